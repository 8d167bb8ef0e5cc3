"""Few examples (issue 34): adaptnb's flow against SetFit's method, same body (MiniLM), same examples.

For each embedded task as the new task, k labelled examples a class (drawn from its train split by the seed), the
user's data: a CSV whose `split` column keeps 80% of each class for train and the rest for valid (8 a class: 6 + 2),
and the task's whole test split as the fixed test set. Ways:
  - adaptnb:             `adaptnb.flow.run` on the default spec (only `new:`; default budget); since 2026-12-07 it
                         makes the contrastive candidate whenever the decision proposes it (under 20 examples a class);
  - adaptnb+contrastive: the same spec with `candidates: [contrastive]`;
  results/fewshot.json also keeps the rows of earlier versions under their own names (`--report` summarises every way
  it finds): `adaptnb@beb202c` (the default made the contrastive candidate only on request; the model trained again
  after the folds ran max(1, s) steps on a schedule of s) and `adaptnb+contrastive@8761929` (the final training fixed;
  the candidate's pairs were half of its 16-step share, 256 pairs at 8 a class, not SetFit's amount);
  - setfit:              SetFit's method with its defaults (20 pair iterations: 2 x 20 pairs per example, one epoch of
                         batches of 16, body lr 2e-5, then its head: scikit-learn's `LogisticRegression()` at its
                         defaults on the body's L2-normalised sentence embeddings, as all-MiniLM-L6-v2's pipeline
                         normalises them) on train + valid. Not `setfit` itself: setfit 1.2.0 imports `evaluate`, which
                         is not installed here; the same method through `adaptnb.flow.pair_fit` (sentence-transformers'
                         CosineSimilarityLoss, SetFit's pair rule) and the same head. `tool` says so per row.
Per run: test accuracy and log loss with standard errors (n = the whole test split); for adaptnb, which candidate it
shipped and whether the shipped model's test S is worse than the base's by more than two paired standard errors (a
shipped regression). Summary: mean over seeds per task, k and way, and the count of shipped regressions. Writes
bench/results/fewshot.json and fewshot.png (accuracy against k, each way). Not run in CI; the lead runs benches alone.
The default grid (4 tasks x k = 8, 16 x 3 seeds, and k = 64 on two tasks, one seed) takes hours on two cores.

    python bench/fewshot.py [--quick] [--ks 8 16] [--seeds 0 1 2] [--tasks news_topic ...] [--big 64] [--out DIR]
    python bench/fewshot.py --report --out DIR   # the runs an interrupted bench finished, summarised
"""
import argparse, dataclasses, json, math, os, time
from pathlib import Path
os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("ADAPTNB_NO_PROGRESS", "1")
import numpy as np
import pandas as pd
from datasets import concatenate_datasets
from adaptnb.core import MultiTaskModel
from adaptnb.data import EMBEDDED, load_task
from adaptnb.flow import pair_fit, run
import torch
from sklearn.linear_model import LogisticRegression
from adaptnb.score import features

ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true", help="a smoke run: one task, k = 8, one seed, 16 steps, 200 test rows")
ap.add_argument("--tasks", nargs="+", default=sorted(EMBEDDED))
ap.add_argument("--ks", nargs="+", type=int, default=[8, 16])
ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
ap.add_argument("--big", type=int, default=64, help="k of the larger runs (two tasks, seed 0); 0: none")
ap.add_argument("--max-length", type=int, default=64)
ap.add_argument("--iterations", type=int, default=20, help="SetFit's num_iterations")
ap.add_argument("--out", default="/tmp/fewshot-bench", help="the flow's run folders and the CSVs")
ap.add_argument("--results", default=str(Path(__file__).parent / "results" / "fewshot.json"))
ap.add_argument("--report", action="store_true", help="summarise the runs already finished in --out; run nothing")
ap.add_argument("--ways", nargs="+", default=["adaptnb", "adaptnb+contrastive", "setfit"],
                choices=["adaptnb", "adaptnb+contrastive", "setfit"])
a = ap.parse_args()
if a.quick:
    a.tasks, a.ks, a.seeds, a.big = ["movie_sentiment"], [8], [0], 0
TEST_MAX = 200 if a.quick else None  # test rows (None: the whole split)
WAYS = a.ways
DONE = Path(a.out) / "rows.jsonl"  # each finished run, appended as it ends: a killed bench resumes where it stopped


def user_data(task: str, k: int, seed: int) -> tuple:
    "The user's CSV (k a class from train: 80% train, the rest valid; the whole test split) and the test Task"
    t = load_task(task)
    rng, rows = np.random.default_rng(seed), []
    y = np.asarray(t.train["label"])
    for c in np.unique(y):
        ix = rng.permutation(np.flatnonzero(y == c))[:k]
        n_train = max(1, round(0.8 * len(ix)))
        rows += [(t.train["text"][i], t.labels[c], "train" if j < n_train else "valid") for j, i in enumerate(ix)]
    test = t.test.select(range(min(TEST_MAX, len(t.test)))) if TEST_MAX else t.test
    rows += [(x, t.labels[c], "test") for x, c in zip(test["text"], test["label"])]
    path = Path(a.out) / f"{task}-k{k}-s{seed}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["text", "label", "split"]).to_csv(path, index=False)
    return path, load_task(f"csv:{path}", name=f"{task}_few")


def flow_way(path: Path, task: str, k: int, seed: int, contrastive: bool) -> dict:
    "adaptnb's flow on the user's CSV: what it shipped, its test numbers, and whether it is a shipped regression"
    spec = {"name": f"{task} k={k}", "new": [{"task": f"csv:{path}", "name": f"{task}_few"}], "seed": seed,
            "max_length": a.max_length}
    if contrastive:
        spec["candidates"] = ["contrastive"]
    if a.quick:
        spec["budget"] = {"max_steps": 16}
    out = Path(a.out) / f"run-{task}-k{k}-s{seed}{'-c' if contrastive else ''}"
    res = run(spec, out, overwrite=True, progress=False)
    v, ts = res.verdict, res.score_final.tasks[f"{task}_few"]
    n = ts.n
    return dict(tool="adaptnb", shipped=v.winner, proposed=list(res.decision.proposed), verdict=v.text, n=n,
                accuracy=ts.accuracy, accuracy_se=math.sqrt(ts.accuracy * (1 - ts.accuracy) / n), loss=ts.loss,
                loss_se=None, S_diff=v.S_diff, S_diff_se=v.S_diff_se,
                regression=bool(v.S_diff > 2 * v.S_diff_se), folds=v.folds, decided_on=sum(v.valid_sizes.values()),
                seconds=res.seconds["total"])  # folds: K when cross-validation decided (valid too small), else 0


def setfit_way(data, seed: int) -> dict:
    "SetFit's method at its defaults on the same examples (train and valid: SetFit has no early stopping)"
    t0, n = time.perf_counter(), len(data.train) + len(data.valid)
    steps = math.ceil(2 * a.iterations * n / 16)  # setfit: 2 pairs per example per iteration, batches of 16, 1 epoch
    both = dataclasses.replace(data, train=concatenate_datasets([data.train, data.valid]))
    m = MultiTaskModel.from_pretrained("default")
    pair_fit(m, [both], steps, batch_size=16, max_length=a.max_length, seed=seed)
    emb = lambda d: torch.nn.functional.normalize(features(m, d, max_length=a.max_length), dim=1).numpy()
    head = LogisticRegression().fit(emb(both.train), np.asarray(both.train["label"]))  # SetFit's default head
    p, y = head.predict_proba(emb(data.test)), np.asarray(data.test["label"])
    nll = -np.log(np.clip(p[np.arange(len(y)), np.searchsorted(head.classes_, y)], 1e-12, None))
    hit = (head.classes_[p.argmax(1)] == y).astype(float)
    n = len(y)
    return dict(tool="adaptnb.flow.pair_fit + LogisticRegression() (SetFit's method and head)", steps=steps, n=n,
                accuracy=float(hit.mean()), accuracy_se=float(hit.std(ddof=1) / math.sqrt(n)), loss=float(nll.mean()),
                loss_se=float(nll.std(ddof=1) / math.sqrt(n)), seconds=time.perf_counter() - t0)


def finished() -> dict:
    "The runs a previous, interrupted bench with the same --out already finished"
    rows = [json.loads(x) for x in DONE.read_text().splitlines()] if DONE.exists() else []
    return {(r["task"], r["k"], r["seed"], r["way"], r.get("quick")): r for r in rows}


def one(task: str, k: int, seed: int) -> list:
    path, data = user_data(task, k, seed)
    rows, done = [], finished()
    for way in WAYS:
        if (task, k, seed, way, a.quick) in done:
            rows.append(done[task, k, seed, way, a.quick]); continue
        r = setfit_way(data, seed) if way == "setfit" else flow_way(path, task, k, seed, way != "adaptnb")
        rows.append(dict(task=task, k=k, seed=seed, way=way, quick=a.quick, **r))
        with DONE.open("a") as f: f.write(json.dumps(rows[-1], default=str) + "\n")
        print({x: rows[-1].get(x) for x in ("task", "k", "seed", "way", "accuracy", "loss", "shipped", "folds")},
              flush=True)
    return rows


grid = [(t, k, s) for s in a.seeds for k in a.ks for t in a.tasks]  # seed-major: a partial run covers every task
grid += [(t, a.big, 0) for t in a.tasks[:2]] if a.big else []
if a.report:  # what an interrupted bench finished, summarised as it stands: each run as it was recorded
    rows = [r for r in finished().values() if r.get("quick") == a.quick and r["task"] in a.tasks]  # every way recorded
    grid = sorted({(r["task"], r["k"], r["seed"]) for r in rows})
else:
    rows = [r for g in grid for r in one(*g)]
df = pd.DataFrame(rows)
summary = (df.groupby(["task", "k", "way"])[["accuracy", "loss"]].agg(["mean", "sem", "count"]).round(4))
print(summary.to_string())
regressions = int(df[df.way.str.startswith("adaptnb")].regression.sum())
print(f"shipped regressions (test S worse than the base by > 2 paired se): {regressions} of "
      f"{int(df.way.str.startswith('adaptnb').sum())} adaptnb runs")
Path(a.results).parent.mkdir(parents=True, exist_ok=True)
Path(a.results).write_text(json.dumps({"quick": a.quick, "grid": grid, "runs": df.to_dict("records"),
                                       "shipped_regressions": regressions}, indent=1, default=str))
import matplotlib.pyplot as plt
tasks, colors = sorted(df.task.unique()), {"adaptnb": "C0", "adaptnb+contrastive": "C1", "setfit": "C2"}
colors |= {w: f"C{3 + i}" for i, w in enumerate(sorted(set(df.way) - set(colors)))}  # ways an earlier version recorded
fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3.2), squeeze=False)
for ax, task in zip(axes[0], tasks):
    for way, g in df[df.task == task].groupby("way"):
        m = g.groupby("k").agg(acc=("accuracy", "mean"), se=("accuracy_se", lambda x: float(np.sqrt((x ** 2).sum()) / len(x))))
        ax.errorbar(m.index, m["acc"], yerr=2 * m["se"], marker="o", capsize=3, label=way, color=colors[way])
    ks = sorted(df.k.unique())
    ax.set(title=task, xlabel="examples a class (k)", xticks=ks, xlim=(min(ks) * 0.7, max(ks) * 1.2))
axes[0][0].set_ylabel("test accuracy (± 2 se of the test set)")
legend = {l: h for ax in axes[0] for h, l in zip(*ax.get_legend_handles_labels())}  # every way, from any task
fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, -0.16))
fig.savefig(Path(a.results).with_suffix(".png"), dpi=110, bbox_inches="tight")
print(f"wrote {a.results} and {Path(a.results).with_suffix('.png')}")
