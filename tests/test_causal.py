"""Causal LMs through the one training engine: every method, generative tasks, kill -9 and exact resume, two processes,
and the bad-input errors, on a tiny random Llama with SmolLM2's tokenizer; the real SmolLM2 under --runslow."""
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest
import torch
from safetensors.torch import load_file

from adaptnb.core import AdaptnbError
from adaptnb.data import load_task, task_from_lists
from adaptnb.llm import (CAUSAL, CausalLM, causal_lora_config, causal_task_score, generative_task_from_file,
                         load_causal_tokenizer, load_prompt_task, prompt_task, prompt_task_from_rows)
from adaptnb.train import TrainConfig, count_params, family_of, fit, latest_checkpoint

ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ADAPTNB_NO_PROGRESS="1", PYTHONUNBUFFERED="1",
           OMP_NUM_THREADS="1")
SMALL = dict(max_length=48, batch_size=8, eval_max=16, eval_batch_size=16)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    "A random 2-layer Llama (width 64) with SmolLM2's tokenizer, saved once: loading it back takes a fraction of a second"
    return CausalLM.from_config(load_causal_tokenizer("smollm2"), seed=0).save(tmp_path_factory.mktemp("tiny") / "m")


@pytest.fixture(scope="module")
def movies():
    return prompt_task("movie_sentiment", max_per_class=24, max_chars=120)


@pytest.fixture(scope="module")
def qa():
    "chatterbot_qa, cut to 64 train, 16 valid and 16 test rows"
    t = load_prompt_task("chatterbot_qa")
    return prompt_task_from_rows({"train": t.train.select(range(64)), "valid": t.valid.select(range(16)),
                                  "test": t.test.select(range(16))}, "chatterbot_qa", generative=True)


def _weights(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


@pytest.mark.parametrize("method", ["lora", "full", "freeze", "retrain"])
def test_every_method_lowers_the_answer_nll(method, tiny_dir, movies, tmp_path):
    "fit trains a CausalLM by each method: valid S falls, only the method's parameters move, model/ reads back"
    m = CausalLM.load(tiny_dir)
    assert family_of(m) is CAUSAL
    before = _weights(m)
    lr = {"lora": 1e-2, "full": 3e-3, "freeze": 3e-3, "retrain": 3e-3}[method]
    r = fit(m, movies, TrainConfig(method=method, lr=lr, max_steps=16, eval_every=8, freeze_layers=1, seed=1,
                                   warmup=0, out=str(tmp_path / "run"), **SMALL))
    print(method, [round(h["S"], 3) for h in r.history], r.trainable_params, r.total_params)
    assert r.steps == 16 and r.history[-1]["S"] < r.history[0]["S"] - 0.05
    assert set(r.test["movie_sentiment"]) >= {"loss", "accuracy", "macro_f1", "n"}
    after = _weights(m)
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    layer0 = {k for k in before if ".layers.0." in k}
    if method == "lora":
        assert r.trainable_params < 0.05 * r.total_params and moved and all("_proj" in k for k in moved)
        assert not any("lora" in k for k in after)  # merged into the weights at the end
    if method == "freeze":
        assert moved and not moved & layer0 and "body.model.embed_tokens.weight" not in moved
    if method in ("full", "retrain"):
        assert "body.model.embed_tokens.weight" in moved and layer0 <= moved
    back = CausalLM.load(tmp_path / "run")
    assert all(torch.equal(after[k], v) for k, v in back.state_dict().items())
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["method"] == method


def test_generative_task_reports_exact_match_and_chrf(tiny_dir, qa):
    "A generative task trains on its answers' NLL; its test report adds exact match and chrF of greedy answers"
    m = CausalLM.load(tiny_dir)
    r = fit(m, qa, TrainConfig(method="full", lr=3e-3, max_steps=12, eval_every=6, warmup=0, **dict(SMALL, max_length=64)))
    t = r.test["chatterbot_qa"]
    print(t, [h["S"] for h in r.history])
    assert r.history[-1]["S"] < r.history[0]["S"] and t["macro_f1"] is None and t["n"] == 16
    assert 0 <= t["exact_match"] <= 1 and 0 <= t["chrf"] <= 100 and 0 <= t["accuracy"] <= 1
    assert r.metrics()["test"]["macro_f1"] is None and "| – |" in r._repr_markdown_()
    ts = causal_task_score(m, m.tokenizer, qa, max_length=64)
    assert ts.loss == pytest.approx(t["loss"], rel=1e-4) and ts.exact_match == t["exact_match"] and ts.chrf == t["chrf"]
    assert len(m.generate(["Question: Are you sentient?\nAnswer:"], max_new_tokens=4)) == 1


def test_same_seed_same_weights(tiny_dir, movies):
    runs = []
    for seed in (5, 5, 6):
        m = CausalLM.load(tiny_dir)
        fit(m, movies, causal_lora_config(max_steps=3, seed=seed, lora_dropout=0.1, **SMALL))
        runs.append(_weights(m))
    a, b, c = runs
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)  # another seed, another data order and dropout


SCRIPT = textwrap.dedent('''
    import os, sys, time
    from adaptnb.llm import CausalLM, prompt_task
    from adaptnb.train import Callback, TrainConfig, fit
    class Slow(Callback):
        def after_step(self, run, step, loss): time.sleep(float(os.environ.get("STEP_SLEEP", "0")))
    src, out, resume = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    m = CausalLM.load(src)
    t = prompt_task("movie_sentiment", max_per_class=24, max_chars=120)
    cfg = TrainConfig(method=sys.argv[4], lr=3e-3, max_steps=16, eval_every=4, checkpoint_every=4, max_length=48,
                      batch_size=8, eval_max=16, lora_dropout=0.1, seed=3, out=out, resume=resume)
    r = fit(m, t, cfg, callbacks=[Slow()])
    print("DONE", r.steps, flush=True)
''')


def _run(tmp_path, src, out, resume, method="lora", **env):
    s = tmp_path / "causal_script.py"
    s.write_text(SCRIPT)
    return subprocess.Popen([sys.executable, str(s), str(src), str(out), "1" if resume else "0", method],
                            env=dict(ENV, **env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _tensors(p):
    return load_file(str(p))


def test_kill_and_resume_is_bit_identical(tiny_dir, tmp_path):
    "A causal LoRA run killed with SIGKILL midway and resumed ends with exactly the weights of an uninterrupted run"
    full, cut = tmp_path / "full", tmp_path / "cut"
    p = _run(tmp_path, tiny_dir, full, False)
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 0 and "DONE 16" in out, out[-2000:]
    p = _run(tmp_path, tiny_dir, cut, False, STEP_SLEEP="0.4")
    t0, killed_at = time.time(), None
    while time.time() - t0 < 300 and p.poll() is None:
        ck = latest_checkpoint(cut / "checkpoint") if (cut / "checkpoint").exists() else None
        if ck is not None and json.loads((ck / "state.json").read_text())["step"] >= 8:
            killed_at = json.loads((ck / "state.json").read_text())["step"]
            os.kill(p.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    p.wait()
    assert killed_at is not None and p.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert killed_at < 16 and not (cut / "metrics.json").exists()
    p = _run(tmp_path, tiny_dir, cut, True)
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 0 and "DONE 16" in out, out[-2000:]
    for f in ("model.safetensors", "best.safetensors"):
        A, B = (_tensors(latest_checkpoint(d / "checkpoint") / f) for d in (full, cut))
        assert A.keys() == B.keys() and all(torch.equal(A[k], B[k]) for k in A), f
    A, B = (_tensors(d / "model" / "model.safetensors") for d in (full, cut))
    assert A.keys() == B.keys() and all(torch.equal(A[k], B[k]) for k in A)
    mf, mc = (json.loads((d / "metrics.json").read_text()) for d in (full, cut))
    assert mf["test"] == mc["test"] and mf["steps"] == mc["steps"] == 16


TWO = textwrap.dedent('''
    import json, os, sys
    from adaptnb.llm import CausalLM, prompt_task
    from adaptnb.train import TrainConfig, fit
    m = CausalLM.load(sys.argv[1])
    t = prompt_task("movie_sentiment", max_per_class=24, max_chars=120)
    r = fit(m, t, TrainConfig(method="full", lr=3e-3, max_steps=8, eval_every=8, max_length=48, batch_size=16,
                              eval_max=32, warmup=0, seed=0))
    if os.environ.get("RANK", "0") == "0":
        json.dump({"valid": r.history[-1]["S"], "first": r.history[0]["S"], "world": int(os.environ.get("WORLD_SIZE", 1))},
                  open(sys.argv[2], "w"))
''')


def test_two_processes_match_one(tiny_dir, tmp_path):
    "Accelerate on two CPU processes (torchrun) trains the same global batch as one process, to the same valid loss"
    s = tmp_path / "two.py"
    s.write_text(TWO)
    one = subprocess.run([sys.executable, str(s), str(tiny_dir), str(tmp_path / "one.json")], env=ENV,
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    torchrun = Path(sys.executable).parent / "torchrun"
    two = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29541", str(s), str(tiny_dir),
                          str(tmp_path / "two.json")], env=ENV, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    print(a, b)
    assert b["world"] == 2 and a["world"] == 1 and a["first"] == pytest.approx(b["first"], rel=1e-4)
    assert a["valid"] < a["first"] and abs(a["valid"] - b["valid"]) < 0.02 * a["valid"], (a, b)


def test_bad_input(tiny_dir, movies, tmp_path):
    m = CausalLM.load(tiny_dir)
    colours = task_from_lists([f"{c} thing {i}" for i in range(6) for c in ("red", "blue")], ["red", "blue"] * 6,
                              name="colours")
    with pytest.raises(AdaptnbError, match="neither prompts nor a prompt template"):
        fit(m, colours, causal_lora_config())
    (tmp_path / "empty.csv").write_text("prompt,answer\nWhat is 2 + 2?,\nWhat is 3 + 3?, 6\n")
    with pytest.raises(AdaptnbError, match="empty or non-text 'answer'"):
        generative_task_from_file(tmp_path / "empty.csv")
    with pytest.raises(AdaptnbError, match="more tokens than the model's 512 positions"):
        fit(m, movies, causal_lora_config(max_length=1024))
    with pytest.raises(AdaptnbError, match=r"cannot load the tokenizer of 'nobody/no-such-model'.*network"):
        CausalLM.from_pretrained("nobody/no-such-model")
    with pytest.raises(AdaptnbError, match="not in the model"):
        fit(m, movies, causal_lora_config(lora_targets=["query", "dense"]))
    with pytest.raises(AdaptnbError, match="no model family serves a Linear"):
        fit(torch.nn.Linear(2, 2), movies)


def test_lora_default_targets_are_the_llama_projections(tiny_dir):
    "The default LoRA targets (query, value) are q_proj and v_proj in a Llama; both trained, nothing else"
    m = CausalLM.load(tiny_dir)
    CAUSAL.prepare(m, TrainConfig(method="lora"), [], [])
    names = {n for n, p in m.named_parameters() if p.requires_grad}
    assert names and all(("q_proj.lora_" in n) or ("v_proj.lora_" in n) for n in names)
    t, n = count_params(m)
    assert 0 < t < 0.05 * n


@pytest.mark.slow
def test_smollm2_lora_lowers_the_valid_answer_nll():
    "The real SmolLM2-135M: a few LoRA steps on Chinese review sentiment lower its valid answer NLL"
    zh = prompt_task("zh_review_sentiment", max_per_class=16, max_chars=30)
    m = CausalLM.from_pretrained("smollm2")
    r = fit(m, zh, causal_lora_config(max_steps=4, lr=2e-3, batch_size=4, max_length=32, eval_max=8, seed=1))
    print([h["S"] for h in r.history])
    assert r.history[-1]["S"] < r.history[0]["S"] and r.trainable_params < 0.01 * r.total_params


def test_cli_finetune_deploy_predict_a_causal_lm(tiny_dir, tmp_path, capsys, monkeypatch):
    "adaptnb finetune/retrain/deploy/predict take a causal LM (a saved CausalLM here; 'smollm2' offline) and prompt tasks"
    from conftest import main_cli
    small = ["--max-steps", "3", "--max-length", "64", "--batch-size", "8", "--eval-max", "8"]
    rc, out, err = main_cli(capsys, "finetune", "--model", tiny_dir, "--task", "movie_sentiment,chatterbot_qa",
                            "--max-per-class", "12", "--method", "lora", *small, "--out", tmp_path / "ft", "--json", "-")
    assert rc == 0, err
    m = json.loads(out)
    qa = m["tasks_test"]["chatterbot_qa"]
    assert m["method"] == "lora" and m["steps"] == 3 and qa["macro_f1"] is None and {"exact_match", "chrf"} <= set(qa)
    assert qa["n"] == len(load_prompt_task("chatterbot_qa").test) and m["test"]["macro_f1"] is not None
    assert not any("lora" in k for k in CausalLM.load(tmp_path / "ft").state_dict())
    rc, out, err = main_cli(capsys, "retrain", "--model", tmp_path / "ft", "--task", "movie_sentiment",
                            "--max-per-class", "12", *small, "--out", tmp_path / "rt")
    assert rc == 0 and "retrain (retrain) on movie_sentiment: 3 steps" in out and "macro-F1" in out, err
    # deploy the run, then predict labels and generate answers from the artifact
    rc, out, err = main_cli(capsys, "deploy", tmp_path / "ft", "--out", tmp_path / "art", "--max-length", "64")
    assert rc == 0 and "gate not checked" in out, err
    meta = json.loads((tmp_path / "art" / "artifact.json").read_text())
    assert meta["family"] == "causal" and meta["tasks"]["movie_sentiment"]["labels"] == ["fresh", "rotten"]
    assert "{text}" in meta["tasks"]["movie_sentiment"]["template"] and meta["tasks"]["chatterbot_qa"]["generative"]
    assert meta["tasks"]["chatterbot_qa"]["template"] == "Question: {text}\nAnswer:"  # predict asks as training did
    card = (tmp_path / "art" / "README.md").read_text()
    assert "Is this movie review Positive or Negative?" in card and "exact match" in card
    rc, out, err = main_cli(capsys, "predict", tmp_path / "art", "--task", "movie_sentiment", "Loved it.", "Awful.")
    recs = [json.loads(l) for l in out.splitlines()]
    assert rc == 0 and [r["text"] for r in recs] == ["Loved it.", "Awful."], err
    assert all(r["label"] in ("fresh", "rotten") and abs(sum(r["probs"].values()) - 1) < 1e-5 for r in recs)
    rc, out, err = main_cli(capsys, "predict", tmp_path / "art", "--generate", "--max-new-tokens", "3", "--file", "-",
                            stdin="Question: Are you sentient? Answer:\n", monkeypatch=monkeypatch)
    assert rc == 0 and set(json.loads(out)) == {"text", "answer"}, err
    rc, out, err = main_cli(capsys, "predict", tmp_path / "art", "--task", "chatterbot_qa", "Are you sentient?")
    assert rc == 0 and set(json.loads(out)) == {"text", "answer"}, err
    q8 = ["deploy", tmp_path / "ft", "--out", tmp_path / "q", "--quantize", "int8", "--tasks", "movie_sentiment",
          "--max-per-class", "12", "--max-length", "64"]
    rc, out, err = main_cli(capsys, *q8)
    if rc == 2:  # int8 served the task worse than fp32: refused, in one line, unless forced
        assert "export refused" in err and "fp32" not in out and len(err.strip().splitlines()) == 1, err
        rc, out, err = main_cli(capsys, *q8, "--force")
    assert rc == 0, err
    q = json.loads((tmp_path / "q" / "artifact.json").read_text())["compression"]
    assert q["quantize"] == "int8" and q["weights_bytes"] < q["fp32_bytes"] and set(q["change"]) >= {"S"}
    assert "int8: the linear layers are int8" in (tmp_path / "q" / "README.md").read_text()
    rc, out, err = main_cli(capsys, "predict", tmp_path / "q", "--task", "movie_sentiment", "Loved it.")
    assert rc == 0 and json.loads(out)["label"] in ("fresh", "rotten"), err
    rc, out, err = main_cli(capsys, "deploy", tmp_path / "ft", "--out", tmp_path / "p", "--prune", "0.5")
    assert rc == 2 and "pruning applies to encoder artifacts" in err and len(err.strip().splitlines()) == 1, err
    # bad input: a classification file without a template, and generation asked of an encoder artifact
    (tmp_path / "colours.csv").write_text("text,label\n" + "".join(f"{c} thing {i},{c}\n" for i in range(6)
                                                                   for c in ("red", "blue")))
    rc, out, err = main_cli(capsys, "finetune", "--model", tiny_dir, "--task", f"csv:{tmp_path}/colours.csv",
                            *small, "--out", tmp_path / "x")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "neither prompts nor a prompt template" in err, err
    from adaptnb.core import MultiTaskModel
    from adaptnb.deploy import export
    from adaptnb.heads import init_heads
    enc = MultiTaskModel.from_pretrained("default")
    init_heads(enc, [load_task("news_topic", max_per_class=6)], max_length=32)
    export(enc, tmp_path / "enc_art", max_length=32)
    rc, out, err = main_cli(capsys, "predict", tmp_path / "enc_art", "--generate", "Question: hi?")
    assert rc == 2 and "cannot generate text" in err and len(err.strip().splitlines()) == 1, err


def test_cli_score_a_causal_lm(tiny_dir, capsys):
    "adaptnb score on a causal LM: answer NLL per task, choice accuracy, exact match and chrF, S(M)"
    from conftest import main_cli
    rc, out, err = main_cli(capsys, "score", "--model", tiny_dir, "--tasks", "movie_sentiment,chatterbot_qa",
                            "--max-per-class", "6", "--max-length", "64", "--batch-size", "8", "--json", "-")
    assert rc == 0, err
    s = json.loads(out)
    mv, qa = s["tasks"]["movie_sentiment"], s["tasks"]["chatterbot_qa"]
    assert s["S"] == pytest.approx((mv["loss"] + qa["loss"]) / 2) and mv["num_labels"] == 2 and qa["macro_f1"] is None
    assert qa["exact_match"] is not None and qa["chrf"] is not None and mv["exact_match"] is None


def _colours_csv(path: Path) -> Path:
    "A two-class classification file that no embedded prompt template knows"
    path.write_text("text,label\n" + "".join(f"a {c} thing number {i},{c}\n" for i in range(30) for c in ("red", "blue")))
    return path


def _echo_csv(path: Path) -> Path:
    "A small generative task: repeat the word"
    words = ["apple", "river", "stone", "cloud", "green", "music", "paper", "light", "table", "horse"] * 4
    path.write_text("prompt,answer\n" + "".join(f"Repeat {w} {i}:, {w} {i}\n" for i, w in enumerate(words)))
    return path


def test_flow_on_a_causal_lm(tiny_dir, tmp_path, capsys):
    "adaptnb run on a causal LM: the base as it is, LoRA candidates, λ on their delta, a retrain, the verdict; model/ is the winner"
    from conftest import main_cli
    from adaptnb.flow import RunResult
    from adaptnb.llm import causal_predictions
    csv = _colours_csv(tmp_path / "colours.csv")
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: colours on a causal LM
        model: {tiny_dir}
        retain: [news_topic]
        new:
          - task: csv:{csv}
            template: "Text: {{text}}\\nColour:"
          - csv:{_echo_csv(tmp_path / "echo.csv")}
        max_per_class: 12
        budget: {{max_steps: 32}}
        max_length: 64
        batch_size: 8
        lr: 0.01
        candidates: [retrain]
        """))
    rc, out, err = main_cli(capsys, "run", spec, "--out", tmp_path / "run", "--sample", "40")
    assert rc == 0, err
    res = RunResult.load(tmp_path / "run" / "run.json")
    names = [c.name for c in res.candidates]
    assert names == ["probe", "lp-ft", "joint", "retrain", "lambda", "lambda-layer"] and res.decision.method == "lora"
    assert res.plan.steps == {"lp-ft": 10, "joint": 10, "retrain": 10}  # the budget, shared
    assert res.verdict.text.splitlines()[0] in out and "answer NLL" in (tmp_path / "run" / "report.md").read_text()
    win = res.candidate(res.verdict.winner)
    assert win.name == "probe" or win.vs_base_valid.diff < -win.vs_base_valid.se  # nothing worse than the base ships
    info = {t["name"]: t for t in res.tasks}
    assert info["colours"]["template"] == "Text: {text}\nColour:" and sorted(info["colours"]["choices"]) == [" blue", " red"]
    assert info["echo"]["generative"] and res.score_final.tasks["echo"].chrf is not None
    shipped = CausalLM.load(tmp_path / "run" / "model")  # the winner's weights: its valid S, recomputed
    tasks = [load_prompt_task("news_topic", max_per_class=12), load_prompt_task(f"csv:{csv}", max_per_class=12,
             template="Text: {text}\nColour:"), load_prompt_task(tmp_path / "echo.csv")]
    assert causal_predictions(shipped, tasks, "valid", max_length=64).score().S == pytest.approx(win.valid.S, abs=1e-4)
    rc, out, err = main_cli(capsys, "deploy", tmp_path / "run", "--out", tmp_path / "art", "--max-length", "64")
    if res.verdict.base_stays:
        assert rc == 2 and "the base stays" in err, err
    else:
        assert rc == 0, err
        meta = json.loads((tmp_path / "art" / "artifact.json").read_text())
        assert meta["tasks"]["colours"]["template"] == "Text: {text}\nColour:" and meta["verdict"]["winner"] == win.name


def test_flow_bad_input_names_the_fix(tiny_dir, tmp_path, capsys):
    "A causal spec whose classification task has no template, and a template given to an encoder: one line each"
    from conftest import main_cli
    csv = _colours_csv(tmp_path / "colours.csv")
    for model, entry, msg in [(tiny_dir, f"csv:{csv}", "neither prompts nor a prompt template"),
                              ("default", f"{{task: 'csv:{csv}', template: 'Text: {{text}}'}}", "a prompt template is for a causal LM")]:
        spec = tmp_path / "spec.yaml"
        spec.write_text(f"model: {model}\nnew: [{entry}]\nbudget: {{max_steps: 16}}\n")
        rc, out, err = main_cli(capsys, "run", spec, "--out", tmp_path / "r", "--overwrite")
        assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1, err


def test_causal_generations_lora_on_a_merged_parent_and_an_update_of_free_text(tiny_dir, tmp_path, capsys):
    "Issue 33 on a causal LM: a LoRA child of a merged LoRA parent updates a free-text task (kept, rehearsed from its "
    "memory, gated on both test sets); an update of a causal classification task is refused in one line"
    from conftest import main_cli
    from adaptnb.lineage import read_generation, run_generation, weights_sha256
    words = ["apple", "river", "stone", "cloud", "green", "music", "paper", "light", "table", "horse"] * 4
    (tmp_path / "twice.csv").write_text("prompt,answer\n" + "".join(f"Say {w} twice {i}:, {w} {w}\n"
                                                                      for i, w in enumerate(words)))
    small = {"budget": {"max_steps": 16}, "lr": 0.01, "batch_size": 8, "max_length": 64, "method": "lora"}
    colours = {"task": f"csv:{_colours_csv(tmp_path / 'colours.csv')}", "template": "Text: {text}\nColour:"}
    g1 = {"model": str(tiny_dir), "new": [colours, f"csv:{_echo_csv(tmp_path / 'echo.csv')}"], "max_per_class": 12,
          "memory": 8, **small}
    res1, gen1 = run_generation(g1, tmp_path / "g1", sample=40, lambda_steps=2, progress=False)
    assert res1.decision.method == "lora" and not list((tmp_path / "g1" / "model").glob("adapter_*"))  # merged
    assert gen1.promise("colours").memory == "" and gen1.promise("echo").memory  # prompts of choices: none kept
    res2, gen2 = run_generation({"model": str(tmp_path / "g1"), "update": {"echo": f"csv:{tmp_path / 'twice.csv'}"},
                                 **small}, tmp_path / "g2", sample=40, lambda_steps=2, progress=False)
    assert res2.decision.method == "lora" and gen2.generation == 2
    assert gen2.parent["weights_sha256"] == weights_sha256(tmp_path / "g1" / "model") == gen1.weights_sha256
    assert gen2.change["update"] == {"echo": "echo@2"} and gen2.tasks() == ["colours", "echo", "echo@2"]
    new = gen2.promise("echo@2")
    assert (new.head, new.since, gen2.promise("echo").since) == ("echo", 2, 1)
    mem = [json.loads(x) for x in Path(new.memory).read_text().splitlines()]  # free text: prompts and answers kept
    assert {"prompt", "answer", "split"} <= set(mem[0]) and sum(r["split"] == "train" for r in mem) == 8
    assert [c.task for c in gen2.gate.checks] == ["colours", "echo", "echo@2"]  # each against the parent's model
    assert gen2.shipped == (gen2.gate.passed or res2.verdict.base_stays)
    rc, out, err = main_cli(capsys, "lineage", tmp_path)
    assert rc == 0 and "update echo (as echo@2)" in out, out + err
    with pytest.raises(AdaptnbError, match="causal LM's classification task"):
        run_generation({"model": str(tmp_path / "g1"), "update": {"colours": colours}, **small}, tmp_path / "g3",
                       sample=40, progress=False)
    assert not (tmp_path / "g3").exists()  # refused before any work: nothing half-written
