"Few labels (issue 34): the shipping rule is a Holm-corrected one-sided test; calibration must help out of fold."
import copy
import dataclasses

import numpy as np
import pytest
import torch

from adaptnb.core import MultiTaskModel
from adaptnb.data import cap_train, load_task
from adaptnb.flow import Candidate, choose, compare_valid, score_test, verdict
from adaptnb.heads import fit_temperature, init_heads
from adaptnb.score import predictions

L = 48  # tokens per text
T = "movie_sentiment"


@pytest.fixture(scope="module")
def base_and_task():
    "The base with a probe head fit on 60 reviews a class; 300 valid and 300 test reviews"
    task = cap_train(load_task(T), 60)
    task = dataclasses.replace(task, valid=task.valid.select(range(300)), test=task.test.select(range(300)))
    base = MultiTaskModel.from_pretrained("default")
    init_heads(base, [task], max_length=L)
    return base, task


def _noisy(base, seed: int, scale: float = 0.6):
    "The base with Gaussian noise on its head's weights: a worse model than the probe, on average"
    m, g = copy.deepcopy(base), torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = m.heads[T].weight
        w.add_(scale * w.abs().mean() * torch.randn(w.shape, generator=g))
    return m


def _compare(models: dict, task, test=False):
    "Candidates made of `models` (the base first), compared on `task`'s valid split (and scored on test)"
    cands, models = [Candidate(n, n, 0.0, 0) for n in models], {n: copy.deepcopy(m) for n, m in models.items()}
    compare_valid(cands, models, [task], L)
    if test:
        score_test(cands, models, [task], L)
    return cands


def test_a_chance_win_on_a_tiny_valid_split_is_not_shipped(base_and_task):
    base, task = base_and_task
    models = {"probe": base} | {f"noisy-{i}": _noisy(base, i) for i in range(4)}
    tiny = dataclasses.replace(task, valid=task.valid.select(range(30, 36)))  # six rows: about what 8 a class leaves
    cands = _compare(models, tiny, test=True)
    lucky = [c for c in cands[1:] if c.vs_base_valid.diff < -c.vs_base_valid.se]
    assert lucky, [(c.name, c.vs_base_valid) for c in cands]  # the old rule (a gain > 1 se) would have shipped these
    assert min(c.p_value for c in lucky) < 0.05  # one uncorrected one-sided test would ship the luckiest too
    assert choose(cands).name == "probe" and all(c.p_value > 0.05 / 4 for c in lucky)  # Holm over four: none
    full = {c.name: c.vs_base_valid for c in _compare(models, task)}  # 300 valid rows: no lucky one has a real gain
    assert all(full[c.name].diff > -full[c.name].se for c in lucky), full
    v = verdict(cands, cands[0])  # the verdict states its evidence, and that six rows are too few to decide on
    assert v.text.startswith("The base stays: no candidate's gain on valid passed the shipping rule")
    assert "on 6 valid examples, Holm over 4 candidate(s) at α = 0.05" in v.text
    assert "Valid is too small to decide on: movie_sentiment 6 valid rows, under the 30" in v.text


def test_a_test_time_reversal_is_said_first(base_and_task):
    base, task = base_and_task
    leaning = copy.deepcopy(base)
    with torch.no_grad():  # a head that leans to class 0: better where valid holds only class 0, worse on test
        leaning.heads[T].bias[0] += 4.0
    zeros = np.flatnonzero(np.asarray(task.valid["label"]) == 0)[:60].tolist()
    skewed = dataclasses.replace(task, valid=task.valid.select(zeros))
    models = {"probe": base, "lp-ft": leaning}
    cands = _compare(models, skewed, test=True)
    win = choose(cands)
    assert win.name == "lp-ft" and win.p_value < 0.05
    v = verdict(cands, win)
    assert v.S_diff > 2 * v.S_diff_se, v  # test S rose, decidedly
    assert v.text.startswith("Test-time reversal: lp-ft passed the shipping rule on valid but did worse than the base")
    assert " won" not in v.text and "test S rose from" in v.text


def test_a_calibration_that_raises_the_out_of_fold_loss_is_skipped(base_and_task):
    base, task = base_and_task
    P = predictions(base, [task], "valid", max_length=L)
    p, y = P.logits[T].softmax(-1).max(-1).values.numpy(), P.labels[T]
    right, wrong = np.flatnonzero((P.preds(T) == y) & (p > 0.8)), np.flatnonzero((P.preds(T) != y) & (p > 0.8))
    rows = sorted(right[:2].tolist() + wrong[:1].tolist())  # two confidently right, one confidently wrong
    assert fit_temperature(P.logits[T][rows], y[rows]) != 1.0  # fit on all three rows, a temperature looks good
    probe = _compare({"probe": base}, dataclasses.replace(task, valid=task.valid.select(rows)))[0]
    assert probe.temperatures == {} and "raised the out-of-fold valid loss" in probe.uncalibrated[T]
    assert probe.valid.S == probe.valid_raw.S


class _Killed(Exception):
    "A kill in the middle of training"


class _KillAt:
    "A callback that ends the process's training at one step, as a kill would"

    def __init__(self, step):
        self.at = step

    def before_fit(self, run):
        pass

    def after_step(self, run, step, loss):
        if step == self.at:
            raise _Killed(step)

    def after_eval(self, run, step, record):
        pass

    def after_fit(self, run):
        pass


def test_the_contrastive_candidate_trains_resumes_and_is_deterministic(tmp_path, monkeypatch):
    """SetFit's method on 8 reviews a class: its pair steps (capped at its share, under SetFit's amount), then at most
    8 LP-FT steps; the same seed, the same weights"""
    from adaptnb.flow import CANDIDATES
    from adaptnb.train import TrainConfig, checkpoints

    task, rec = load_task(T, max_per_class=8), CANDIDATES["contrastive"]
    monkeypatch.setattr(rec, "pair_cap", 1)  # its pairs at most its share: 8 steps, for time
    cfg = TrainConfig(method="full", lr=5e-5, head_lr=5e-5, max_steps=8, batch_size=8, max_length=32, seed=0,
                      metric="S_calibrated", keep_best=True, patience=4)

    def train(out, **kw):
        m = MultiTaskModel.from_pretrained("default")
        init_heads(m, [task], max_length=32)  # the base as the probe stage readies it
        return m, rec.train(m, [task], dataclasses.replace(cfg, out=str(out), resume=kw.pop("resume", False)), **kw)

    m1, tr1 = train(tmp_path / "a")
    assert tr1.config["pair_steps"] == 8 and 3 < tr1.steps <= 8  # SetFit's amount would be 40 × 12 / 8 = 60 steps
    w0, sd1 = MultiTaskModel.from_pretrained("default").body.state_dict(), m1.state_dict()
    assert not all(torch.equal(m1.body.state_dict()[k], w0[k]) for k in w0)  # the pairs moved the body
    assert not (tmp_path / "a.pairs.safetensors").exists()  # the moved body is kept only until training ends
    with pytest.raises(_Killed):
        train(tmp_path / "c", callbacks=[_KillAt(3)])
    assert (tmp_path / "c.pairs.safetensors").exists() and checkpoints(tmp_path / "c" / "checkpoint")
    m3, tr3 = train(tmp_path / "c", resume=True)  # as the flow resumes it: from its last checkpoint
    sd3 = m3.state_dict()  # the same pairs drawn again by the same seed, then the rest from the checkpoint:
    assert tr3.history == tr1.history and all(torch.equal(sd1[k], sd3[k]) for k in sd1)  # the same numbers


def _five_a_class(path) -> str:
    "A user's CSV: 5 reviews a class (4 train, 1 valid) and 40 test reviews; its `csv:` reference"
    import pandas as pd

    t, rng, rows = load_task(T), np.random.default_rng(0), []
    y = np.asarray(t.train["label"])
    for c in np.unique(y):
        ix = rng.permutation(np.flatnonzero(y == c))[:5]
        rows += [(t.train["text"][i], t.labels[c], "train" if j < 4 else "valid") for j, i in enumerate(ix)]
    rows += [(x, t.labels[c], "test") for x, c in zip(t.test["text"][:40], t.test["label"][:40])]
    pd.DataFrame(rows, columns=["text", "label", "split"]).to_csv(path, index=False)
    return f"csv:{path}"


def test_five_examples_a_class_select_by_folds_and_say_so(tmp_path):
    "Valid holds 2 rows: the run cross-validates over the 10 labelled rows (K = 5), says so, and resumes to the same numbers"
    import json
    import threading

    from adaptnb.core import load_json
    from adaptnb.flow import FlowHalted, run

    spec = {"name": "few", "new": [{"task": _five_a_class(tmp_path / "few.csv"), "name": "few"}], "max_length": 32,
            "batch_size": 8, "budget": {"max_steps": 8}, "seed": 0}
    halt = threading.Event()
    on_stage = lambda k, n, name, what: halt.set() if name.startswith("train ") else None
    with pytest.raises(FlowHalted):  # killed after the folds, during the final training's stage
        run(spec, tmp_path / "run", sample=60, progress=False, halt=halt, on_stage=on_stage)
    cv_file = tmp_path / "run" / "stages" / "cross-validate.json"
    first = load_json(cv_file)
    test_eq_ = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert (first["folds"], first["repeats"], first["n"], first["valid_rows"]) == (5, 1, {"few": 10}, {"few": 2})
    cv_file.unlink()  # as a kill during the cross-validation leaves it: resume computes it again
    res = run(spec, tmp_path / "run", sample=60, progress=False, resume=True)
    assert test_eq_(load_json(cv_file), first)  # the same seed, the same folds, steps and out-of-fold logits
    v = res.verdict
    assert (v.folds, v.valid_sizes, v.valid_rows) == (5, {"few": 10}, {"few": 2})
    assert ("Valid is too small to decide on: few 2 valid rows, under the 30 a task the rule asks for; the stopping "
            "step, the temperature and the comparison rest on 5-fold cross-validation") in v.text
    lp = res.candidate("lp-ft")  # trained again on the folds' schedule, stopped where they chose: what they measured
    assert lp.steps == first["steps"]["lp-ft"] and f"stopped at step {lp.steps}" in lp.what
    if lp.steps == 0:  # no step beat its start: the final model is the probe itself, and the verdict says so
        assert lp.same_as == "probe" and "no candidate moved from it" in v.text
    else:
        assert "out-of-fold examples (5-fold cross-validation over train and valid)" in v.text and " on 10 " in v.text
    assert lp.valid.tasks["few"].n == 10 and lp.vs_base_valid.tasks["few"]["n"] == 10  # the paired test reads 10 rows
    assert not v.base_stays or v.advice[-1].startswith("more labelled examples would tell smaller gains from noise")
