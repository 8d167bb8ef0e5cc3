"""Faults of a training run's checkpoints: `--resume` with nothing to resume, a damaged newest checkpoint, and a disk
that fills (a file-size limit, `RLIMIT_FSIZE`) while a checkpoint is written. And `adaptnb deploy` killed with SIGKILL
while it writes an artifact.

The faults that strike a process (the file-size limit, SIGKILL) strike a real `adaptnb` process; the runs and resumes
around them go through the same `adaptnb.cli.main` in this process (a fresh process would add seconds of imports and
test nothing more). One uninterrupted run is the reference: every recovery must end with its weights, bit for bit."""
import contextlib, hashlib, io, json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest

from adaptnb.train import checkpoints, latest_checkpoint, read_checkpoint

ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ADAPTNB_NO_PROGRESS="1", PYTHONUNBUFFERED="1")
ARGS = ["--task", "news_topic", "--max-per-class", "20", "--max-steps", "8", "--checkpoint-every", "4",
        "--eval-every", "4", "--batch-size", "8", "--max-length", "32"]
WEIGHTS = ("model/body/model.safetensors", "model/heads.safetensors")


def _cli(*args) -> subprocess.CompletedProcess:
    "`adaptnb ARGS...` in this process (`adaptnb.cli.main`, as the entry point runs it), as `subprocess.run` returns it"
    from adaptnb.cli import main
    out, err, quiet = io.StringIO(), io.StringIO(), os.environ.get("ADAPTNB_NO_PROGRESS")
    os.environ["ADAPTNB_NO_PROGRESS"] = "1"  # as in ENV: no progress bars
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        if quiet is None: os.environ.pop("ADAPTNB_NO_PROGRESS")
        else: os.environ["ADAPTNB_NO_PROGRESS"] = quiet
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def _digests(out: Path) -> dict:
    "sha256 of the trained model's weight files"
    return {f: hashlib.sha256((out / f).read_bytes()).hexdigest() for f in WEIGHTS}


def _tree(d: Path) -> dict:
    "Every file under `d` with its size and modification time"
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(d.rglob("*"))}


def _step(ck: Path) -> int:
    return json.loads((ck / "state.json").read_text())["step"]


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    "An uninterrupted 8-step run with checkpoints at steps 4 and 8, and the digests of its weights"
    out = tmp_path_factory.mktemp("faults") / "ref"
    r = _cli("finetune", *ARGS, "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert [_step(d) for d in checkpoints(out / "checkpoint")] == [8, 4]  # the previous checkpoint is kept
    return out, _digests(out)


def test_resume_with_no_checkpoint_is_an_error_and_leaves_the_folder(tmp_path):
    "A run killed before its first checkpoint: --resume says there is nothing to resume and changes nothing"
    out = tmp_path / "run"
    out.mkdir()
    (out / "train_config.json").write_text("{}\n")
    (out / "log.jsonl").write_text('{"step": 0}\n')
    before = _tree(out)
    r = _cli("finetune", *ARGS, "--out", str(out), "--resume")
    line = _one_line(r.stderr)
    assert r.returncode == 2 and "nothing to resume" in line and "holds no checkpoint" in line and "--resume" in line
    assert _tree(out) == before


def test_damaged_latest_checkpoint_falls_back_to_the_previous(reference):
    "The newest checkpoint's weights cut short: resume says so, continues from the previous one, ends as the reference"
    out, digests = reference
    newest = latest_checkpoint(out / "checkpoint")
    assert _step(newest) == 8
    f = newest / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    r = _cli("finetune", *ARGS, "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "step-00000008" in r.stderr and "is damaged" in r.stderr and "resuming from step-00000004" in r.stderr
    assert json.loads((out / "metrics.json").read_text())["steps"] == 8
    assert _digests(out) == digests  # the same weights as the run that was never damaged
    assert read_checkpoint(latest_checkpoint(out / "checkpoint"))["state"]["step"] == 8  # written anew, whole


FULL_DISK = textwrap.dedent('''
    import json, resource, signal, sys, threading, time
    from pathlib import Path
    from adaptnb.cli import main

    out = Path(sys.argv[1])
    def fill_disk_after_first_checkpoint():
        "Once step 4's checkpoint is in place, no file may grow past 1 MB: the next checkpoint cannot be written"
        latest = out / "checkpoint" / "latest.json"
        while not (latest.exists() and json.loads(latest.read_text())["step"] == 4):
            time.sleep(0.01)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, resource.RLIM_INFINITY))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
    threading.Thread(target=fill_disk_after_first_checkpoint, daemon=True).start()
    sys.exit(main(["finetune", *sys.argv[2:], "--out", str(out)]))
''')


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(reference, tmp_path):
    "The disk fills while step 8's checkpoint is written: one line, step 4 stays valid, resume ends as the reference"
    _, digests = reference
    out, script = tmp_path / "full", tmp_path / "full_disk.py"
    script.write_text(FULL_DISK)
    r = subprocess.run([sys.executable, str(script), str(out), *ARGS], env=ENV, capture_output=True, text=True,
                       timeout=600)
    line = _one_line(r.stderr)
    assert r.returncode == 2 and "could not write checkpoint step-00000008" in line, line
    assert "the previous checkpoint (step-00000004) is intact" in line
    ck = out / "checkpoint"
    assert [p.name for p in checkpoints(ck)] == ["step-00000004"] and not list(ck.glob(".*.tmp"))  # no half checkpoint
    assert read_checkpoint(latest_checkpoint(ck))["state"]["step"] == 4 and not (out / "metrics.json").exists()
    r = _cli("finetune", *ARGS, "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    assert _digests(out) == digests


TEXTS = ["Shares in the bank fell after it reported a loss", "The striker scored twice in the cup final"]


def _deploy_killed(src: Path, out: Path, *args, when: str) -> Path:
    "Start `adaptnb deploy SRC --out OUT ARGS`; SIGKILL it once its temporary folder holds `when` ('' = exists)"
    cmd = [sys.executable, "-m", "adaptnb.cli", "deploy", str(src), "--out", str(out), *args]
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tmp, deadline = None, time.monotonic() + 300
    while p.poll() is None and time.monotonic() < deadline:
        tmp = next(out.parent.glob(f".{out.name}.tmp-{p.pid}-*"), None)
        if tmp is not None and (tmp / when).exists():
            p.send_signal(signal.SIGKILL)
            break
        time.sleep(0.001)
    _, err = p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL, f"deploy ended ({p.returncode}) before it could be killed: {err[-2000:]}"
    assert tmp is not None and tmp.is_dir()  # killed midway: its temporary folder is left behind
    return tmp


def _files(d: Path) -> dict:
    "sha256 of every file in an artifact folder"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_kill_during_deploy_leaves_no_half_artifact(tmp_path):
    "SIGKILL while deploy writes: no artifact, or the previous one intact; the leftover never loads; deploy again works"
    import torch
    from adaptnb.core import AdaptnbError, MultiTaskModel
    from adaptnb.deploy import MANIFEST, export, load, load_artifact
    m = MultiTaskModel.from_pretrained("default")
    torch.manual_seed(0)
    m.add_head("news_topic", ["business", "sport", "politics"], 0.1 * torch.randn(3, m.hidden_size))
    src, art = m.save(tmp_path / "model"), tmp_path / "art"
    # 1. a first deploy, killed as soon as it starts writing: nothing at --out, and what it left cannot be loaded
    tmp = _deploy_killed(src, art, "--name", "first", when="")
    assert not art.exists()
    with pytest.raises(AdaptnbError, match="holds no artifact.json"):
        load_artifact(tmp)
    # deploying again cleans up after the killed process and writes the artifact
    export(src, art, name="first")
    assert not tmp.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    before, probs = _files(art), load(art, device="cpu").predict_proba(TEXTS)
    # 2. replacing it (--overwrite), killed once the new weights are written: the old artifact is there, whole
    tmp = _deploy_killed(src, art, "--overwrite", "--name", "second", when="model.safetensors")
    assert _files(art) == before and json.loads((art / MANIFEST).read_text())["name"] == "first"
    assert (load(art, device="cpu").predict_proba(TEXTS) == probs).all()
    with pytest.raises(AdaptnbError, match="holds no artifact.json"):
        load_artifact(tmp)
    r = _cli("deploy", str(src), "--out", str(art), "--overwrite", "--name", "second")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((art / MANIFEST).read_text())["name"] == "second" and not tmp.exists()
    assert (load(art, device="cpu").predict_proba(TEXTS) == probs).all()
