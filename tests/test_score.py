"""`adaptnb score` from a fresh process (JSON contract, saved models and run folders, errors as one line, exit 2),
and the parts of adaptnb.score that the notebook does not exercise: feature-cache invalidation and label mapping."""
import json, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptnb.core import MultiTaskModel
from adaptnb.data import load_task, task_from_lists
from adaptnb.score import Score, evaluate_task, features, fit_probe, score, example_losses

CLI = [sys.executable, "-c", "import sys; from adaptnb.cli import main; sys.exit(main())", "score"]
SMALL = ["--max-per-class", "20", "--max-length", "64"]


def run(*args, timeout=600):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def model():
    return MultiTaskModel.from_pretrained("default")


@pytest.fixture(scope="module")
def news():
    return load_task("news_topic", max_per_class=20)


def test_cli_json_contract_and_plot(tmp_path):
    r = run("--tasks", "news_topic,movie_sentiment", *SMALL, "--json", str(tmp_path / "s.json"), "--plot", str(tmp_path / "s.png"))
    assert r.returncode == 0, r.stderr
    js = json.loads((tmp_path / "s.json").read_text())
    assert set(js) >= {"S", "S_weighted", "S_normalized", "S_se", "tasks"}
    for t in ("news_topic", "movie_sentiment"):
        assert set(js["tasks"][t]) >= {"loss", "loss_se", "accuracy", "macro_f1", "n"}
        assert js["tasks"][t]["probe_fitted"] is True
    L = [js["tasks"][t]["loss"] for t in ("news_topic", "movie_sentiment")]
    assert js["S"] == pytest.approx(np.mean(L), rel=1e-12)
    assert js["S_normalized"] == pytest.approx(np.mean([L[0] / np.log(5), L[1] / np.log(2)]), rel=1e-12)
    assert "fitted now" in r.stdout and "S =" in r.stdout
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert Score.from_dict(js).to_contract() == js


@pytest.mark.parametrize("args, words", [
    (["--tasks", ","], "no task"),
    (["--tasks", "news_topic", "--split", "dev"], "split 'dev'"),
    (["--tasks", "no_such_task"], "unknown task"),
    (["--tasks", "news_topic", "--model", "/no/such/model"], "does not exist"),
])
def test_cli_errors_are_one_line(args, words):
    r = run(*args, *SMALL)
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("adaptnb score: error:") and words in err[0], r.stderr


def test_saved_model_and_run_folder(tmp_path, model, news):
    fit_probe(model, news, max_length=64)
    ours = score(model, [news], max_length=64, fit_missing=False, progress=False)
    model.save(tmp_path / "run" / "model")
    for where in (tmp_path / "run", tmp_path / "run" / "model"):
        r = run("--model", str(where), "--tasks", "news_topic", *SMALL, "--json", "-")
        assert r.returncode == 0, r.stderr
        js = json.loads(r.stdout)
        assert js["tasks"]["news_topic"]["probe_fitted"] is False          # the saved head was used, not refit
        assert js["S"] == pytest.approx(ours.S, rel=1e-5)


def test_feature_cache_follows_the_weights(model, news):
    X1 = features(model, news.test, max_length=64)
    assert features(model, news.test, max_length=64) is X1
    emb = model.body.get_input_embeddings().weight
    with torch.no_grad(): emb.mul_(1.01)                                    # an in-place update, like an optimiser step
    try:
        X2 = features(model, news.test, max_length=64)
        assert X2 is not X1 and not torch.allclose(X1, X2)
    finally:
        with torch.no_grad(): emb.div_(1.01)
    assert torch.allclose(features(model, news.test, max_length=64), X1, atol=1e-5)
    assert not torch.equal(features(model, news.test, max_length=128), torch.zeros_like(X1))  # another key, computed


def test_test_split_with_fewer_labels_maps_by_name(model):
    words = ["red", "green", "blue"]
    texts = [f"a {w} thing number {i}" for i in range(10) for w in words]
    full = task_from_lists(texts, [w for i in range(10) for w in words], name="colours")
    fit_probe(model, full, max_length=32)
    assert model.labels["colours"] == ["blue", "green", "red"]
    two = task_from_lists([t for t in texts if "red" in t or "blue" in t],
                          [w for t in texts for w in words if f" {w} " in t and w != "green"], name="colours")
    assert two.labels == ["blue", "red"]
    ts = evaluate_task(model, two, "test", max_length=32)
    X = features(model, two.test, max_length=32)
    with torch.no_grad(): logits = model.heads["colours"](X)
    y = np.array([["blue", "green", "red"].index(two.labels[i]) for i in two.test["label"]])
    assert ts.num_labels == 3 and ts.loss == pytest.approx(example_losses(logits, y).mean(), rel=1e-6)
