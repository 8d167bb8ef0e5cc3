"""bench/lambda.py: how many forward passes learned λ needs to reach S within 1% of the grid optimum, against the
21-point grid λ ∈ {0, 0.05, …, 1}. Target: at most a quarter of the grid's passes.

Keeps news_topic through a probe head fit on θ0, fine-tunes the body on movie_sentiment with adaptnb.train.fit,
builds θ(λ) = θ0 + λ(θt − θ0), evaluates the grid and learns λ (global and layer-wise) on the valid split, then
scores λ = 0, 1, the grid best and the learned λ on the test split. One "pass" is one evaluation of the
objective over the valid data (a learning step is a forward and a backward pass; the wall-clock ratio is
printed too). The ratio is printed last.

The training splits can be capped (--movie-train-per-class) while valid and test stay whole (adaptnb.data.cap_train).

    python bench/lambda.py [--movie-train-per-class N] [--ft-steps 300] [--n 200] [--steps 8] [--alpha 0.2]
"""
import argparse, copy, json, os, sys, time
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np
import torch
import transformers, datasets
from adaptnb.core import MultiTaskModel, seed_everything
from adaptnb.data import load_task, cap_train
from adaptnb.heads import init_heads
from adaptnb.score import score, example_losses
from adaptnb.train import TrainConfig, fit
from adaptnb.interpolate import TaskVector, Interpolation, objective_data, grid_lambda, learn_lambda, plot_lambda, plot_trajectory

def passes_to_reach(res, target: float):
    "Objective evaluations learn_lambda needed before S first came within `target` (None if never)"
    for k, t in enumerate(res.trajectory):
        if t["S"] <= target: return k + 1, t
    return None, None

@torch.no_grad()
def test_losses(model, data) -> dict:
    "Per-example cross-entropy of `model` on every (task, batch) of `data`, as {task: array}"
    out = {}
    for t, b in data.batches:
        lg = model(b["input_ids"], b["attention_mask"], task=t)
        out.setdefault(t, []).append(example_losses(lg, b["labels"]))
    return {t: np.concatenate(v) for t, v in out.items()}

def paired_diff(a: dict, b: dict) -> tuple[float, float]:
    "S(a) − S(b) on the same examples and its standard error (per-example differences, tasks independent)"
    d = [a[t] - b[t] for t in a]
    return float(np.mean([x.mean() for x in d])), float(np.sqrt(sum(x.var(ddof=1) / len(x) for x in d)) / len(d))

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--news-train-per-class", type=int, default=None, help="cap news_topic's train split (valid/test whole)")
    p.add_argument("--movie-train-per-class", type=int, default=None, help="cap movie_sentiment's train split (valid/test whole)")
    p.add_argument("--ft-steps", type=int, default=300)
    p.add_argument("--n", type=int, default=200, help="valid examples per task that λ is learned and the grid evaluated on")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--head-lr", type=float, default=1e-4)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--alpha", type=float, default=0.2, help="Adam's step for the global λ")
    p.add_argument("--layer-alpha", type=float, default=0.1, help="Adam's step for layer-wise λ")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default=None, help="save the loss-vs-λ plot here")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    transformers.logging.set_verbosity_error(); datasets.disable_progress_bars()
    t0 = time.perf_counter()
    seed_everything(a.seed)
    news, movie = load_task("news_topic", seed=a.seed), load_task("movie_sentiment", seed=a.seed)
    if a.news_train_per_class: news = cap_train(news, a.news_train_per_class, a.seed)
    if a.movie_train_per_class: movie = cap_train(movie, a.movie_train_per_class, a.seed)
    base = MultiTaskModel.from_pretrained("default")
    init_heads(base, [news, movie], max_length=64, seed=a.seed)
    tuned = copy.deepcopy(base)
    fit(tuned, movie, TrainConfig(method="full", max_steps=a.ft_steps, lr=a.lr, batch_size=16, max_length=64,
                                  head_lr=a.head_lr, eval_every=a.ft_steps, keep_best=False, seed=a.seed))
    tuned.eval()
    print(f"set-up (tasks, probes, fine-tune {a.ft_steps} steps): {time.perf_counter() - t0:.0f}s; news {news.sizes}, movie {movie.sizes}", flush=True)
    tv = TaskVector.between(base, tuned, "movie_sentiment")
    interp, interp_layer = Interpolation(base, tv), Interpolation(base, tv, "layer")
    data = objective_data(base.tokenizer, [news, movie], "valid", n=a.n, max_length=64, seed=a.seed)
    grid = grid_lambda(interp, data, progress=False)
    target = 1.01 * grid.best_value
    runs = {"adam": learn_lambda(interp, data, optimizer="adam", alpha=a.alpha, steps=a.steps, init=1.0, keep_best=True, progress=False),
            "gd (source, α=0.01)": learn_lambda(interp, data, optimizer="gd", alpha=0.01, steps=min(a.steps, 3), init=1.0, progress=False),
            "layer-wise adam": learn_lambda(interp_layer, data, optimizer="adam", alpha=a.layer_alpha, steps=a.steps, init=1.0, keep_best=True, progress=False)}
    print(f"\ngrid: best λ = {grid.best_lambda:g}, S = {grid.best_value:.4f}, S(0) = {grid.values[0]:.4f}, S(1) = {grid.values[-1]:.4f}; "
          f"{grid.forward_passes} passes in {grid.seconds:.1f}s ({grid.seconds / grid.forward_passes:.2f}s each)")
    rows = {}
    for name, r in runs.items():
        k, t = passes_to_reach(r, target)
        sec = r.seconds * (k / r.forward_passes) if k else None
        rows[name] = {"passes": k, "seconds": sec, "final_S": r.value, "lambda": r.lam}
        lam = f"{r.lam:.3f}" if isinstance(r.lam, float) else f"mean {np.mean(r.lam):.3f}"
        print(f"{name:<22} final λ = {lam}, S = {r.value:.4f}; within 1% of the grid optimum after "
              + (f"{k} passes ({sec:.1f}s)" if k else f"never in {r.forward_passes} passes"))
    at = {"0": interp.materialize(0.0), "1": interp.materialize(1.0), f"grid {grid.best_lambda:g}": interp.materialize(grid.best_lambda),
          f"learned {runs['adam'].lam:.3f}": interp.materialize(runs["adam"].lam), "layer-wise": interp_layer.materialize(runs["layer-wise adam"].lam)}
    print(f"\n{'test split':<16}{'S':>8}{'L news':>9}{'L movie':>9}{'acc news':>10}{'acc movie':>10}")
    tests = {}
    for k, m in at.items():
        s = score(m, [news, movie], split="test", max_length=64, progress=False)
        tests[k] = s.to_contract()
        print(f"{k:<16}{s.S:>8.4f}{s.tasks['news_topic'].loss:>9.4f}{s.tasks['movie_sentiment'].loss:>9.4f}"
              f"{s.tasks['news_topic'].accuracy:>10.3f}{s.tasks['movie_sentiment'].accuracy:>10.3f}")
    test_data = objective_data(base.tokenizer, [news, movie], "test", n=None, max_length=64, seed=a.seed)
    per = {k: test_losses(m, test_data) for k, m in at.items()}
    learned_key = [k for k in at if k.startswith("learned")][0]
    for k in (learned_key, "layer-wise", f"grid {grid.best_lambda:g}"):
        for end in ("0", "1"):
            d, se = paired_diff(per[k], per[end])
            tests[k].setdefault("paired", {})[end] = {"diff": d, "se": se}
            print(f"test S({k}) − S(λ={end}) = {d:+.4f} ± {se:.4f} (paired se)")
    if a.plot: plot_lambda(grid, {"global (adam)": runs["adam"], "layer-wise (adam)": runs["layer-wise adam"]}, path=a.plot)
    k = rows["adam"]["passes"]
    out = {"grid": grid.to_dict(), "learned": rows, "test": tests, "args": vars(a), "seconds": time.perf_counter() - t0}
    if a.json:
        with open(a.json, "w") as f: json.dump(out, f, indent=2, default=str)
    print(f"\ntotal {time.perf_counter() - t0:.0f}s")
    if k is None: print("ratio: learned λ (adam) did not reach 1% of the grid optimum"); return 1
    print(f"wall-clock ratio learned/grid to reach 1%: {rows['adam']['seconds'] / grid.seconds:.3f}")
    print(f"ratio (forward passes, learned λ to reach S within 1% of the grid optimum / 21-point grid): {k}/{grid.forward_passes} = {k / grid.forward_passes:.3f}")
    return 0

if __name__ == "__main__": sys.exit(main())
