"""adaptnb decide / run / demo as a user runs them, real model and data (tiny slices): the run that is killed in a real
subprocess; the whole run, the resume and the refusals through the same `adaptnb.cli.main` in this process."""
import contextlib, io, json, os, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import main_cli

SPEC = """
name: tiny
retain: [news_topic]
new: [movie_sentiment]
budget: {max_steps: 16}
max_per_class: 30
max_length: 32
batch_size: 8
targets: {movie_sentiment: {accuracy: 0.3}}
"""

def adaptnb(*args, cwd=None, timeout=900):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return subprocess.run(["adaptnb", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)

def here(capsys, *args):
    "`adaptnb ARGS` in this process, in the form `adaptnb(...)` returns"
    return subprocess.CompletedProcess(args, *main_cli(capsys, *args))

def in_process(*args):
    "`adaptnb ARGS` in this process (without capsys, for a module fixture), in the form `adaptnb(...)` returns"
    from adaptnb.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())

@pytest.fixture
def spec(tmp_path):
    p = tmp_path/"spec.yaml"; p.write_text(SPEC); return p

@pytest.mark.parametrize("text,msg", [
    ("new: [movie_sentimant]\n", "unknown task"),
    ("new: [movie_sentiment]\nbudget: {max_steps: 0}\n", "positive number"),
    ("retain: [movie_sentiment]\nnew: [movie_sentiment]\n", "both retained and new"),
    ("new: [movie_sentiment]\ntargets: {movie_sentiment: {f1: 0.9}}\n", "reports no metric"),
])
def test_bad_spec_is_one_clear_line(tmp_path, capsys, text, msg):
    p = tmp_path/"bad.yaml"; p.write_text(text)
    for cmd in (["decide", str(p)], ["run", str(p), "--out", str(tmp_path/"out")]):
        r = here(capsys, *cmd)
        assert r.returncode == 2, r.stderr
        assert msg in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path/"out").exists()

def test_bad_threshold_override(spec, capsys):
    r = here(capsys, "decide", str(spec), "--set", "max_unk=0.1")
    assert r.returncode == 2 and "--set" in r.stderr

def test_decide_json_contract(spec, tmp_path, capsys):
    r = here(capsys, "decide", str(spec), "--sample", "60", "--json", str(tmp_path/"d.json"))
    assert r.returncode == 0, r.stderr
    d = json.loads((tmp_path/"d.json").read_text())
    assert d["action"] in ("finetune", "retrain") and isinstance(d["method"], str) and isinstance(d["learn_lambda"], bool)
    assert all(isinstance(x, str) and x for x in d["reasons"])
    t = d["assessment"]["tasks"]["movie_sentiment"]
    for k in ("probe_loss", "probe_loss_scratch", "relative_gap", "logme", "logme_scratch", "unk_rate", "tokens_per_word", "per_class_min"):
        assert isinstance(t[k], (int, float)), k
    assert d["assessment"]["budget_steps"] == 16 and "decision:" in r.stdout

@pytest.fixture(scope="module")
def whole_run(tmp_path_factory):
    "One uninterrupted `adaptnb run` of the tiny spec: its spec, folder and completed process"
    d = tmp_path_factory.mktemp("whole")
    spec = d/"spec.yaml"; spec.write_text(SPEC)
    r = in_process("run", str(spec), "--out", str(d/"run"), "--sample", "60", "--json", str(d/"r.json"))
    return spec, d/"run", r

def test_run_writes_the_run_folder(whole_run, capsys):
    spec, out, r = whole_run
    assert r.returncode == 0, r.stderr[-3000:]
    run = json.loads((out/"run.json").read_text())
    for k in ("requirement", "audit", "score_base", "decision", "plan", "candidates", "verdict", "train", "score_final",
              "targets", "seconds"):
        assert k in run, k
    for s in ("score_base", "score_final"):
        assert set(run[s]) >= {"S", "S_weighted", "S_normalized", "S_se", "tasks"} and set(run[s]["tasks"]) == {"news_topic", "movie_sentiment"}
    assert run["decision"]["action"] in ("finetune", "retrain") and run["plan"]["steps"] == {"lp-ft": 8, "joint": 8}
    names = [c["name"] for c in run["candidates"]]
    assert names[:3] == ["probe", "lp-ft", "joint"] and 0 < run["train"]["lp-ft"]["steps"] <= 8
    for c in run["candidates"]:                              # every candidate: valid and test, before and after calibration
        assert {"valid_raw", "valid", "test_raw", "test", "vs_base_valid", "vs_base_test", "seconds", "moved"} <= set(c)
    v = run["verdict"]
    assert v["winner"] in names and v["base_stays"] == (v["winner"] == "probe") and v["text"] in r.stdout
    assert run["score_final"]["S"] == next(c for c in run["candidates"] if c["name"] == v["winner"])["test"]["S"]
    assert "met" in run["targets"]["movie_sentiment"]["accuracy"]
    for f in ("report.md", "audit.png", "training-lp-ft.png", "scores.png", "confusion-movie_sentiment.png",
              "model/adaptnb.json", "train/lp-ft/metrics.json"):
        assert (out/f).exists(), f
    assert not (out/"train"/"lp-ft"/"checkpoint").exists()   # a recorded candidate keeps no checkpoint
    text = (out/"report.md").read_text()
    assert text.index("## Verdict") < text.index("## Candidates") < text.index("## Decision")
    r2 = here(capsys, "run", str(spec), "--out", str(out))          # a second run into the same folder is refused
    assert r2.returncode == 2 and "already holds a run" in r2.stderr
    r3 = here(capsys, "run", str(spec), "--out", str(out), "--resume")  # and a finished one is not resumed
    assert r3.returncode == 2 and "has finished" in r3.stderr

def _timeless(x):
    "A run record without what may differ between two runs of the same seed: wall times, speeds, folders, notes"
    if isinstance(x, dict):
        return {k: _timeless(v) for k, v in x.items() if "second" not in k and k not in ("out", "notes")}
    return [_timeless(v) for v in x] if isinstance(x, list) else x

def test_killed_run_resumes_to_the_uninterrupted_result(whole_run, tmp_path):
    "kill -9 in the middle of a candidate's training; --resume reads the finished stages back and ends as a whole run"
    spec, whole, _ = whole_run
    out, env = tmp_path/"run", dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    p = subprocess.Popen(["adaptnb", "run", str(spec), "--out", str(out), "--sample", "60"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mid = out/"train"/"joint"/"checkpoint"/"latest.json"   # joint's first checkpoint: lp-ft is done, joint is not
    deadline = time.time() + 600
    while not mid.exists():
        assert p.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    p.kill(); p.wait()
    assert not (out/"run.json").exists() and not (out/"stages"/"train-joint.json").exists()
    r = in_process("run", str(spec), "--out", str(out), "--sample", "60", "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    for stage in ("audit", "probe the base", "assess", "train lp-ft"):
        assert f"{stage}: finished before" in r.stdout, stage
    assert "train joint: freeze" in r.stdout or "train joint: full" in r.stdout
    a, b = (json.loads((d/"run.json").read_text()) for d in (whole, out))
    assert "resumed: audit, probe the base, assess, train lp-ft" in " ".join(b["notes"])
    a, b = _timeless(a), _timeless(b)
    for k in a:                          # the same numbers, from a run that was killed in its own process and one that was not
        assert a[k] == b[k], k
    for f in ("heads.safetensors", "body/model.safetensors"):   # and the same winner, byte for byte
        assert (whole/"model"/f).read_bytes() == (out/"model"/f).read_bytes(), f

def test_resume_without_a_started_run(spec, tmp_path, capsys):
    "--resume on a folder no run started: one line, and the folder left as it was"
    out = tmp_path/"run"; out.mkdir(); (out/"mine.txt").write_text("keep")
    r = here(capsys, "run", str(spec), "--out", str(out), "--resume")
    assert r.returncode == 2 and "nothing to resume" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    r = here(capsys, "run", str(spec), "--out", str(out), "--resume", "--overwrite")
    assert r.returncode == 2 and "contradict" in r.stderr

def test_budget_too_small_for_the_candidates(spec, tmp_path, capsys):
    spec.write_text(SPEC.replace("max_steps: 16", "max_steps: 6"))
    r = here(capsys, "run", str(spec), "--out", str(tmp_path/"run"), "--sample", "60")
    assert r.returncode == 2 and "give budget {max_steps: 16} or more" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path/"run").exists(), r.stderr  # before any work

@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    t0 = time.perf_counter()
    r = adaptnb("demo", "--out", str(tmp_path/"demo"), timeout=1800)
    wall = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    run = json.loads((tmp_path/"demo"/"run.json").read_text())
    assert run["decision"]["assessment"]["retain"] == ["news_topic"] and run["decision"]["assessment"]["new"] == ["movie_sentiment"]
    assert "[1/" in r.stdout and "score on test" in r.stdout                  # progress is shown
    print(f"demo wall time {wall:.0f} s; stages {run['seconds']}")
    # what the demo promises: the whole test splits; a winner whose valid gain passed the shipping rule (a one-sided
    # paired t-test, Holm over the candidates, α = 0.05) and whose test gain is decided (more than 2 paired se; measured:
    # 3.0), with the news competence kept
    v, fin, base = run["verdict"], run["score_final"]["tasks"], run["score_base"]["tasks"]
    assert fin["movie_sentiment"]["n"] == 1275 and fin["news_topic"]["n"] == 212
    assert not v["base_stays"] and v["p_value"] < 0.05 and v["S_diff"] < -2 * v["S_diff_se"], v["text"]
    assert fin["news_topic"]["accuracy"] >= base["news_topic"]["accuracy"] - 0.01
    assert v["text"] in r.stdout and (tmp_path/"demo"/"model"/"adaptnb.json").exists()
