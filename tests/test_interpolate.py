"`adaptnb interpolate` through the installed console script, on a run folder written by `adaptnb finetune`."
import json, os, subprocess, sys
from pathlib import Path
import pytest

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
