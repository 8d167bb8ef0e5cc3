"`adaptnb interpolate` through the installed console script, on a run folder written by `adaptnb finetune`; the head invariant."
import json, os, subprocess, sys
from pathlib import Path
import pytest
import torch

ADAPTNB = [str(Path(sys.executable).parent / "adaptnb")]

def _run(args, **kw):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.run(ADAPTNB + args, capture_output=True, text=True, env=env, timeout=1800, **kw)

def test_interpolate_bad_input_exits_2(tmp_path):
    r = _run(["interpolate", "--tuned", str(tmp_path / "missing"), "--tasks", "news_topic"])
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = _run(["interpolate", "--tuned", str(tmp_path), "--tasks", "news_topic", "--granularity", "neuron"])
    assert r.returncode == 2 and "granularity" in r.stderr

@pytest.mark.slow
def test_interpolate_cli_on_a_finetune_run(tmp_path):
    run = tmp_path / "run"
    r = _run(["finetune", "--task", "movie_sentiment", "--max-per-class", "20", "--max-steps", "4", "--batch-size", "8",
              "--max-length", "32", "--out", str(run)])
    assert r.returncode == 0, r.stderr
    out = tmp_path / "i.json"
    r = _run(["interpolate", "--tuned", str(run), "--tasks", "news_topic,movie_sentiment", "--max-per-class", "20",
              "--learn", "--optimizer", "adam", "--alpha", "0.1", "--steps", "2", "--n", "8", "--max-length", "32",
              "--granularity", "layer", "--json", str(out), "--out", str(tmp_path / "blend")])
    assert r.returncode == 0, r.stderr
    j = json.loads(out.read_text())
    assert j["granularity"] == "layer" and isinstance(j["lambda"], list) and len(j["lambda"]) == len(j["groups"])
    assert set(j["at"]) == {"0", "1", "learned"}
    for s in j["at"].values():
        assert {"S", "S_weighted", "S_normalized", "S_se", "tasks"} <= set(s)
        assert set(s["tasks"]) == {"news_topic", "movie_sentiment"}
    assert [t["step"] for t in j["trajectory"]] == [0, 1, 2] and all("S" in t and "lambda" in t for t in j["trajectory"])
    assert (tmp_path / "blend" / "adaptnb.json").exists()


def test_finetune_then_probed_task_vector_keeps_the_head_invariant(tmp_path):
    "The probe probed_task_vector gives θ0 is the head fine-tuning (init_heads='probe', LP-FT) started from"
    from adaptnb.core import MultiTaskModel
    from adaptnb.data import load_task
    from adaptnb.train import TrainConfig, fit
    from adaptnb.interpolate import named_weights, probed_task_vector
    task = load_task("movie_sentiment", max_per_class=10)
    # the body learns; the head's learning rate is so small that the tuned head is the head training started from
    cfg = TrainConfig(method="full", max_steps=2, batch_size=8, max_length=32, lr=1e-4, head_lr=1e-12, eval_every=2, keep_best=False,
                      seed=0, out=str(tmp_path / "run"))
    fit(MultiTaskModel.from_pretrained("default"), [task], cfg, init_heads="probe")
    tuned = MultiTaskModel.from_pretrained(str(tmp_path / "run"))
    base = MultiTaskModel.from_pretrained("default")
    assert not base.has_head("movie_sentiment")
    tv = probed_task_vector(base, tuned, [task], max_length=32, seed=0)
    start, end = base.heads["movie_sentiment"].weight, tuned.heads["movie_sentiment"].weight
    # a random head, or a probe fit with other options, is far from the probe fine-tuning started from
    assert (end - start).abs().max() < 1e-6, float((end - start).abs().max())
    assert any(not k.startswith("heads.") for k in tv.delta)   # fine-tuning moved the body
    # the head part of τ is the fine-tuning's change of the head (none, here), and θ0 + τ is θt, head included
    for k in ("heads.movie_sentiment.weight", "heads.movie_sentiment.bias"):
        w0, wt = named_weights(base)[k], named_weights(tuned)[k]
        assert torch.equal(w0 + tv.delta[k] + tv.residual.get(k, 0), wt) if k in tv.delta else torch.equal(w0, wt)
    assert all(torch.equal(v, named_weights(tuned)[k]) for k, v in named_weights(tv.apply_to(base, 1.0)).items())
