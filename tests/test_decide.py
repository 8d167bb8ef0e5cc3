"adaptnb decide / run / demo as a user runs them: real subprocesses, real model, real data (tiny slices)."
import json, os, subprocess, sys, time
from pathlib import Path
import pytest

SPEC = """
name: tiny
retain: [news_topic]
new: [movie_sentiment]
budget: {max_steps: 6}
max_per_class: 30
max_length: 32
batch_size: 8
targets: {movie_sentiment: {accuracy: 0.3}}
"""

def adaptnb(*args, cwd=None, timeout=900):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return subprocess.run(["adaptnb", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)

@pytest.fixture
def spec(tmp_path):
    p = tmp_path/"spec.yaml"; p.write_text(SPEC); return p

@pytest.mark.parametrize("text,msg", [
    ("new: [movie_sentimant]\n", "unknown task"),
    ("new: [movie_sentiment]\nbudget: {max_steps: 0}\n", "positive number"),
    ("retain: [movie_sentiment]\nnew: [movie_sentiment]\n", "both retained and new"),
    ("new: [movie_sentiment]\ntargets: {movie_sentiment: {f1: 0.9}}\n", "reports no metric"),
])
def test_bad_spec_is_one_clear_line(tmp_path, text, msg):
    p = tmp_path/"bad.yaml"; p.write_text(text)
    for cmd in (["decide", str(p)], ["run", str(p), "--out", str(tmp_path/"out")]):
        r = adaptnb(*cmd)
        assert r.returncode == 2, r.stderr
        assert msg in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path/"out").exists()

def test_bad_threshold_override(spec):
    r = adaptnb("decide", str(spec), "--set", "max_unk=0.1")
    assert r.returncode == 2 and "--set" in r.stderr

def test_decide_json_contract(spec, tmp_path):
    r = adaptnb("decide", str(spec), "--sample", "60", "--json", str(tmp_path/"d.json"))
    assert r.returncode == 0, r.stderr
    d = json.loads((tmp_path/"d.json").read_text())
    assert d["action"] in ("finetune", "retrain") and isinstance(d["method"], str) and isinstance(d["learn_lambda"], bool)
    assert all(isinstance(x, str) and x for x in d["reasons"])
    t = d["assessment"]["tasks"]["movie_sentiment"]
    for k in ("probe_loss", "probe_loss_scratch", "relative_gap", "logme", "logme_scratch", "unk_rate", "tokens_per_word", "per_class_min"):
        assert isinstance(t[k], (int, float)), k
    assert d["assessment"]["budget_steps"] == 6 and "decision:" in r.stdout

def test_run_writes_the_run_folder(spec, tmp_path):
    out = tmp_path/"run"
    r = adaptnb("run", str(spec), "--out", str(out), "--sample", "60", "--json", str(tmp_path/"r.json"))
    assert r.returncode == 0, r.stderr[-3000:]
    run = json.loads((out/"run.json").read_text())
    for k in ("requirement", "audit", "score_base", "decision", "train", "score_final", "targets", "seconds"):
        assert k in run, k
    for s in ("score_base", "score_final"):
        assert set(run[s]) >= {"S", "S_weighted", "S_normalized", "S_se", "tasks"} and set(run[s]["tasks"]) == {"news_topic", "movie_sentiment"}
    assert run["decision"]["action"] in ("finetune", "retrain") and run["train"]["steps"] == 6
    assert "met" in run["targets"]["movie_sentiment"]["accuracy"]
    for f in ("report.md", "audit.png", "training.png", "scores.png", "model/adaptnb.json", "train/metrics.json"):
        assert (out/f).exists(), f
    assert "## Decision" in (out/"report.md").read_text()
    r2 = adaptnb("run", str(spec), "--out", str(out))          # a second run into the same folder is refused
    assert r2.returncode == 2 and "already holds a run" in r2.stderr

@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    t0 = time.perf_counter()
    r = adaptnb("demo", "--out", str(tmp_path/"demo"), timeout=1800)
    wall = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    run = json.loads((tmp_path/"demo"/"run.json").read_text())
    assert run["decision"]["assessment"]["retain"] == ["news_topic"] and run["decision"]["assessment"]["new"] == ["movie_sentiment"]
    assert "[1/8]" in r.stdout and "[8/8]" in r.stdout                      # progress is shown
    print(f"demo wall time {wall:.0f} s; stages {run['seconds']}")
