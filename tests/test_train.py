"Training engine tests that need real subprocesses: kill -9 and exact resume, torchrun, the CLI; and the bad-input errors."
import json, os, shutil, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest
import torch
from safetensors.torch import load_file

from adaptnb.core import AdaptnbError, MultiTaskModel
from adaptnb.data import load_task
from adaptnb.train import TrainConfig, fit, NonFiniteLoss, latest_checkpoint
from conftest import main_cli
load_run = MultiTaskModel.from_pretrained  # the one loader reads a run folder

ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ADAPTNB_NO_PROGRESS="1", PYTHONUNBUFFERED="1")
TINY = dict(max_length=32, batch_size=8, eval_max=16, eval_batch_size=32)

@pytest.fixture(scope="module")
def task(): return load_task("news_topic", max_per_class=12)

@pytest.fixture(scope="module")
def base(): return MultiTaskModel.from_pretrained("default")

def fresh(base):
    import copy
    return copy.deepcopy(base)

SCRIPT = textwrap.dedent('''
    import os, sys, time
    from adaptnb.core import MultiTaskModel
    from adaptnb.data import load_task
    from adaptnb.train import TrainConfig, fit, Callback
    class Slow(Callback):
        def after_step(self, run, step, loss): time.sleep(float(os.environ.get("STEP_SLEEP", "0")))
    out, resume = sys.argv[1], sys.argv[2] == "1"
    t = load_task("news_topic", max_per_class=12)
    m = MultiTaskModel.from_pretrained("default")
    cfg = TrainConfig(max_steps=20, max_length=32, batch_size=8, eval_every=5, checkpoint_every=4, eval_max=16, seed=3, out=out, resume=resume)
    r = fit(m, t, cfg, callbacks=[Slow()])
    print("DONE", r.steps, flush=True)
''')

def _run_script(tmp_path, out, resume, **env):
    s = tmp_path/"train_script.py"; s.write_text(SCRIPT)
    return subprocess.Popen([sys.executable, str(s), str(out), "1" if resume else "0"], env=dict(ENV, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

def _same_tensors(a, b):
    A, B = load_file(str(a)), load_file(str(b))
    assert A.keys() == B.keys()
    return [k for k in A if not torch.equal(A[k], B[k])]

@pytest.mark.slow  # by default, test_faults' disk-full crash mid-fit resumes bit-identically, and test_decide SIGKILLs a flow run
def test_kill_and_resume_is_bit_identical(tmp_path):
    "A run killed with SIGKILL midway and resumed ends with exactly the weights of an uninterrupted run"
    full, cut = tmp_path/"full", tmp_path/"cut"
    p = _run_script(tmp_path, full, False); out = p.communicate(timeout=900)[0]
    assert p.returncode == 0 and "DONE 20" in out, out[-2000:]
    p = _run_script(tmp_path, cut, False, STEP_SLEEP="0.3")
    t0 = time.time(); killed_at = None
    while time.time() - t0 < 600 and p.poll() is None:
        ck = latest_checkpoint(cut/"checkpoint") if (cut/"checkpoint").exists() else None
        if ck is not None and json.loads((ck/"state.json").read_text())["step"] >= 8:
            killed_at = json.loads((ck/"state.json").read_text())["step"]; os.kill(p.pid, signal.SIGKILL); break
        time.sleep(0.05)
    p.wait()
    assert killed_at is not None and p.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (cut/"metrics.json").exists() and killed_at < 20
    p = _run_script(tmp_path, cut, True); out = p.communicate(timeout=900)[0]
    assert p.returncode == 0 and "DONE 20" in out, out[-2000:]
    last = lambda d: latest_checkpoint(d/"checkpoint")/"model.safetensors"
    assert _same_tensors(last(full), last(cut)) == []
    best = lambda d: latest_checkpoint(d/"checkpoint")/"best.safetensors"
    assert _same_tensors(best(full), best(cut)) == []
    assert _same_tensors(full/"model"/"heads.safetensors", cut/"model"/"heads.safetensors") == []
    assert _same_tensors(full/"model"/"body"/"model.safetensors", cut/"model"/"body"/"model.safetensors") == []
    mf, mc = (json.loads((d/"metrics.json").read_text()) for d in (full, cut))
    assert mf["test"] == mc["test"] and mf["steps"] == mc["steps"] == 20

def test_bad_input(task, base, tmp_path):
    for bad, words in [(dict(lr=0), "lr"), (dict(lr=-1.0), "lr"), (dict(batch_size=0), "batch size"), (dict(method="distill"), "unknown method"),
                       (dict(method="lora", lora_targets=["q_proj"]), "q_proj")]:
        with pytest.raises(AdaptnbError, match=words): fit(fresh(base), task, TrainConfig(**dict(TINY, max_steps=1, **bad)))
    out = tmp_path/"run"
    fit(fresh(base), task, TrainConfig(max_steps=2, out=str(out), **TINY))
    with pytest.raises(AdaptnbError, match="already holds a run"): fit(fresh(base), task, TrainConfig(max_steps=2, out=str(out), **TINY))
    # a checkpoint from another model: a smaller BERT with the same tokenizer
    from transformers import AutoModel, BertConfig
    other = MultiTaskModel(AutoModel.from_config(BertConfig(vocab_size=base.tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2,
                                                             num_attention_heads=2, intermediate_size=128)), tokenizer=base.tokenizer, base="tiny-bert")
    with pytest.raises(AdaptnbError, match="different model"): fit(other, task, TrainConfig(max_steps=4, out=str(out), resume=True, **TINY))

def test_nonfinite_loss_stops_and_keeps_checkpoint(task, base, tmp_path):
    class Poison:
        def after_step(self, run, step, loss):
            if step == 5:
                with torch.no_grad(): run.model.heads[task.name].weight.fill_(float("nan"))
    out = tmp_path/"nan"
    with pytest.raises(NonFiniteLoss, match="step 6") as e:
        fit(fresh(base), task, TrainConfig(max_steps=10, checkpoint_every=2, eval_every=100, out=str(out), **TINY), callbacks=[Poison()])
    assert "lower the learning rate" in str(e.value)
    ck = latest_checkpoint(out/"checkpoint")
    assert json.loads((ck/"state.json").read_text())["step"] == 4
    assert all(torch.isfinite(v).all() for v in load_file(str(ck/"model.safetensors")).values())

def test_stop_flag(task, base, tmp_path):
    import threading
    ev = threading.Event()
    class Press:
        def after_step(self, run, step, loss):
            if step == 3: ev.set()
    r = fit(fresh(base), task, TrainConfig(max_steps=50, out=str(tmp_path/"s"), **TINY), callbacks=[Press()], stop=ev)
    assert r.steps == 3 and "stop" in r.stopped
    m = load_run(tmp_path/"s"); assert m.has_head(task.name)
    assert json.loads((tmp_path/"s"/"metrics.json").read_text())["steps"] == 3

def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "adaptnb.cli", *args], env=ENV, capture_output=True, text=True, cwd=cwd, timeout=900)

def test_cli_finetune_and_retrain(tmp_path, capsys):
    "The finetune command in a real process; the refusals and retrain through the same `main`, in this process"
    out = tmp_path/"ft"
    r = _cli("finetune", "--task", "news_topic", "--method", "lora", "--max-per-class", "12", "--max-steps", "3", "--max-length", "32",
             "--batch-size", "8", "--out", str(out), "--json", "-")
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads(r.stdout)
    assert m["method"] == "lora" and m["task"] == "news_topic" and m["steps"] == 3 and m["train_seconds"] > 0
    assert set(m["test"]) >= {"loss", "accuracy", "macro_f1"} and json.loads((out/"metrics.json").read_text())["test"] == m["test"]
    assert (out/"train_config.json").exists() and (out/"log.jsonl").exists() and latest_checkpoint(out/"checkpoint") is not None
    body = load_run(out).body
    assert not any("lora" in n for n, _ in body.named_parameters())   # merged back
    rc, _, err = main_cli(capsys, "finetune", "--task", "news_topic", "--max-steps", "3", "--out", out)
    assert rc == 2 and "already holds a run" in err and "--resume" in err
    rc, _, err = main_cli(capsys, "finetune", "--task", "news_topic", "--method", "dora", "--out", tmp_path/"x")
    assert rc == 2 and "unknown method 'dora'" in err
    rc, stdout, err = main_cli(capsys, "retrain", "--task", "news_topic", "--max-per-class", "12", "--max-steps", "2", "--max-length", "32",
                               "--batch-size", "8", "--out", tmp_path/"rt")
    assert rc == 0, err[-3000:]
    assert "retrain (retrain) on news_topic: 2 steps" in stdout
    assert json.loads((tmp_path/"rt"/"metrics.json").read_text())["method"] == "retrain"

TORCHRUN = textwrap.dedent('''
    import json, os, sys
    from adaptnb.core import MultiTaskModel
    from adaptnb.data import load_task
    from adaptnb.train import TrainConfig, fit
    t = load_task("news_topic", max_per_class=24)
    m = MultiTaskModel.from_pretrained("default")
    r = fit(m, t, TrainConfig(max_steps=12, max_length=32, batch_size=16, eval_every=12, eval_max=60, seed=0, lr=1e-4))
    if os.environ.get("RANK", "0") == "0":
        json.dump({"valid": r.history[-1]["valid"]["news_topic"], "train": r.history[-1]["train_loss"], "world": int(os.environ.get("WORLD_SIZE", 1))}, open(sys.argv[1], "w"))
''')

@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    s = tmp_path/"tr.py"; s.write_text(TORCHRUN)
    one = subprocess.run([sys.executable, str(s), str(tmp_path/"one.json")], env=ENV, capture_output=True, text=True, timeout=900)
    assert one.returncode == 0, one.stderr[-3000:]
    torchrun = Path(sys.executable).parent/"torchrun"
    two = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29533", str(s), str(tmp_path/"two.json")],
                         env=dict(ENV, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=900)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (json.loads((tmp_path/f"{n}.json").read_text()) for n in ("one", "two"))
    assert b["world"] == 2 and a["world"] == 1
    assert abs(a["valid"] - b["valid"]) < 0.1 * a["valid"] + 0.02, (a, b)
    assert abs(a["train"] - b["train"]) < 0.1 * a["train"] + 0.02, (a, b)
