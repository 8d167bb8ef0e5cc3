"Choosing among candidates on real predictions: the base stays unless a candidate's gain passes the shipping rule."
import copy
import pytest
import torch

from adaptnb.core import MultiTaskModel
from adaptnb.data import load_task
from adaptnb.flow import SHIP_ALPHA, Candidate, choose, compare_valid, holm, score_test, verdict
from adaptnb.heads import init_heads

L = 48  # tokens per text


@pytest.fixture(scope="module")
def base_and_tasks():
    tasks = [load_task("news_topic", max_per_class=40), load_task("movie_sentiment", max_per_class=60)]
    base = MultiTaskModel.from_pretrained("default")
    init_heads(base, tasks, max_length=L)
    return base, tasks


def _field(base, **models):
    "Candidates and their models: the base first, then the given ones"
    models = {"probe": copy.deepcopy(base), **models}
    return [Candidate(n, n, 0.0, 0) for n in models], models


def test_base_stays_when_nothing_beats_it(base_and_tasks):
    base, tasks = base_and_tasks
    inverted, same = copy.deepcopy(base), copy.deepcopy(base)
    with torch.no_grad():  # a movie head that predicts the opposite: worse, and no temperature can mend it
        inverted.heads["movie_sentiment"].weight.mul_(-1)
        inverted.heads["movie_sentiment"].bias.mul_(-1)
    cands, models = _field(base, **{"lp-ft": inverted, "joint": same})
    compare_valid(cands, models, tasks, L)
    assert cands[2].same_as == "probe" and cands[2].vs_base_valid.diff == 0 and cands[2].vs_base_valid.se == 0
    assert cands[1].vs_base_valid.diff > 0 and cands[1].temperatures["movie_sentiment"] > 2  # worse; T flattens it
    assert all(c.valid.S <= c.valid_raw.S + 1e-9 for c in cands)  # calibration never raises the valid loss
    win = choose(cands)
    assert win.name == "probe"
    score_test(cands, models, tasks, L)
    v = verdict(cands, win)
    assert v.base_stays and v.S_diff == 0 and v.text.startswith("The base stays: no candidate's gain on valid passed")
    assert "the closest, lp-ft" in v.text  # joint shares the base's weights, so the closest that moved is lp-ft


def test_a_better_candidate_wins(base_and_tasks):
    base, tasks = base_and_tasks
    cold = copy.deepcopy(base)
    with torch.no_grad():  # the base made over-confident: calibration brings it back to the base, so it is a tie
        cold.heads["movie_sentiment"].weight.mul_(5)
        cold.heads["movie_sentiment"].bias.mul_(5)
    worse = copy.deepcopy(base)
    with torch.no_grad():
        worse.heads["news_topic"].weight.mul_(-1)
    cands, models = _field(worse, **{"lp-ft": copy.deepcopy(base), "lambda": cold})
    compare_valid(cands, models, tasks, L)  # here the "base" has a broken news head: both candidates beat it
    win = choose(cands)
    assert win.name in ("lp-ft", "lambda") and win.name in holm({c.name: c.p_value for c in cands[1:]}, SHIP_ALPHA)
    score_test(cands, models, tasks, L)
    v = verdict(cands, win)
    assert not v.base_stays and v.S_diff < 0 and v.text.startswith(f"{win.name} won: test S fell from")


def test_a_registered_candidate_is_made_resumed_and_rebuilt(tmp_path):
    """WiSE-FT, one class in the registry: asked for in a spec, made in the λ stage at λ = 0.5, read back on resume,
    rebuilt by `candidate_models`; nothing outside its class names it. The spec lists two bases (`models:`), so the
    run first chooses one: the pretrained MiniLM over its random-init twin saved as a user's folder"""
    from adaptnb.decide import scratch_model
    from adaptnb.flow import CANDIDATES, WiseFt, candidate_models, run
    from adaptnb.train import family_of
    from adaptnb.spec import partition
    scratch_model().save(tmp_path / "random-minilm")
    spec = {"retain": ["movie_sentiment"], "new": ["news_topic"], "budget": {"max_steps": 24}, "max_per_class": 40,
            "max_length": 32, "batch_size": 8, "method": "full", "lr": 1e-4, "candidates": ["wise-ft"],
            "models": ["default", str(tmp_path / "random-minilm")]}
    res = run(spec, tmp_path / "run", sample=40, lambda_steps=2, progress=False)
    assert [(b["model"], b["chosen"]) for b in res.bases] == [("default", True), (spec["models"][1], False)]
    assert res.bases[1]["diff"] > res.bases[1]["diff_se"] > 0 and res.requirement.model == "default"
    assert "Base: `default` chosen of 2: the lowest S on valid" in (tmp_path / "run" / "report.md").read_text()
    names = [c.name for c in res.candidates]
    assert isinstance(CANDIDATES["wise-ft"], WiseFt) and res.train["lp-ft"].best_step > 0, names
    assert names == ["probe", "lp-ft", "joint", "lambda", "lambda-layer", "wise-ft"]
    wise = res.candidate("wise-ft")
    assert wise.lam == 0.5 and res.interpolate["wise-ft"]["lambda"] == 0.5 and "WiSE-FT" in wise.what
    assert wise.vs_base_valid is not None and wise.vs_base_test is not None  # compared like every other candidate
    (tmp_path / "run" / "run.json").unlink()  # as if killed before the end: every stage is read back
    again = run(spec, tmp_path / "run", sample=40, lambda_steps=2, progress=False, resume=True)
    assert again.bases == res.bases  # the choice read back, not made again
    assert [c.test.S for c in again.candidates] == [c.test.S for c in res.candidates]
    back = candidate_models(tmp_path / "run", ["wise-ft"])["wise-ft"]
    tasks = partition(spec).tasks
    assert family_of(back).predictions(back, tasks, "test", 32).score().S == pytest.approx(wise.test.S, abs=1e-4)
