"""Requirements that keep changing (issue 33): a sequence of requirement changes on the embedded data, run three ways.

Generations (every kind of change: `new:`, `extend:`, `update:`, `drop:`):
  1. news topics, three of the five;  2. + movie sentiment;  3. news gains its other two topics (extend);
  4. sentiment also on Chinese product reviews, relabelled to movie sentiment's labels (update);
  5. + utterance language, - news topics.
Ways, each at the same steps per generation:
  - lineage: `adaptnb.lineage.run_generation`, each generation the previous one's child (the flow, then every promise
    checked against the parent; shipped with `force` when a promise broke, so that the sequence goes on, and the
    row's `gate` says so);
  - naive:   the previous naive model fine-tuned on the new tasks alone, every step taken and the last weights kept
             (the forgetting floor; `fit`'s default keeps the best valid step, which with few steps is often the start);
  - joint:   the pretrained base fine-tuned on every promised task so far (the ceiling, and the costly way).
Per generation and way: each promised task's test accuracy and loss (calibrated on valid), average accuracy, backward
transfer (mean accuracy change of earlier tasks since they were learnt; an extended task is scored on all its
classes from its extension on, so its change across `extend` mixes forgetting with the harder test), S with its
paired standard error against the joint ceiling, and cumulative training seconds. Writes bench/results/lineage.json and lineage.png (and the lineage
way's run folders under --out). Not run in CI; the lead runs benches alone.

An updated task's head serves two promises (its old test set and the new one, `movie_sentiment@4` in the lineage,
`movie_sentiment_zh` here); every way is scored by this script on every promise's test set.

Every task's data is written once as a csv with its own splits, each split capped a class on its own (train at
--max-per-class, valid at a quarter of it, test at --test-per-class), so that the test sets stay large (news 212 rows,
movie and the Chinese reviews 400, utterance 1,347 at the defaults) and never share a row with train.

    python bench/lineage.py [--steps 400] [--max-per-class 200] [--test-per-class 200] [--max-length 64] [--out DIR]
    python bench/lineage.py --quick   # a smoke run: 32 steps, 16 examples a class, 32 tokens (a few minutes on a CPU)
"""
import argparse, copy, dataclasses, json, os, time
from pathlib import Path
os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("ADAPTNB_NO_PROGRESS", "1")
import numpy as np
from adaptnb.core import MultiTaskModel
from adaptnb.data import load_task
from adaptnb.heads import calibrate
from adaptnb.lineage import Promise, grow_head, joint_data, run_generation, without_tasks
from adaptnb.train import ENCODERS
from adaptnb.score import paired_diff, predictions
from adaptnb.train import fit


ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=400, help="training steps per generation, every way")
ap.add_argument("--max-per-class", type=int, default=200, help="training rows a class (valid: a quarter, at least 8)")
ap.add_argument("--test-per-class", type=int, default=200, help="test rows a class (fewer when the split has fewer)")
ap.add_argument("--max-length", type=int, default=64)
ap.add_argument("--batch-size", type=int, default=16); ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--out", default="/tmp/lineage-bench", help="the lineage way's run folders (and the bench's data)")
ap.add_argument("--quick", action="store_true", help="a smoke run: 32 steps, 16 examples a class, 32 tokens")
ap.add_argument("--results", default=str(Path(__file__).parent / "results" / "lineage.json"))
a = ap.parse_args()
if a.quick:
    a.steps, a.max_per_class, a.test_per_class, a.max_length, a.batch_size = 32, 16, 50, 32, 8
SETTINGS = dict(max_length=a.max_length, batch_size=a.batch_size, seed=a.seed)  # the rows: capped in the csvs
CAPS = {"train": a.max_per_class, "valid": max(8, a.max_per_class // 4), "test": a.test_per_class}


def write_csv(name: str, task: str, keep=None, relabel=None) -> str:
    "An embedded task's rows (classes `keep` only, labels renamed by `relabel`) as a csv keeping its splits, capped by CAPS"
    import pandas as pd
    t, rows, rng = load_task(task), [], np.random.default_rng(a.seed)
    for split in ("train", "valid", "test"):  # each split capped on its own: test sets stay large, disjoint from train
        d = t.split(split)
        y = np.asarray(d["label"])
        ix = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:CAPS[split]] for c in np.unique(y)]))
        rows += [(d["text"][i], (relabel or {}).get(t.labels[y[i]], t.labels[y[i]]), split) for i in ix
                 if keep is None or t.labels[y[i]] in keep]
    path = Path(a.out) / "data" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["text", "label", "split"]).to_csv(path, index=False)
    return f"csv:{path}"


NEWS = load_task("news_topic").labels
NEWS3, NEWS5 = write_csv("news3", "news_topic", NEWS[:3]), write_csv("news5", "news_topic", NEWS)
ZH = write_csv("zh_as_movie", "zh_review_sentiment", relabel={"neg": "rotten", "pos": "fresh"})
MOVIE, UTTERANCE = write_csv("movie", "movie_sentiment"), write_csv("utterance", "utterance_language")
GENERATIONS = [
    {"new": [{"task": NEWS3, "name": "news_topic"}]},
    {"new": [{"task": MOVIE, "name": "movie_sentiment"}]},
    {"extend": {"news_topic": NEWS5}},
    {"update": {"movie_sentiment": ZH}},
    {"new": [{"task": UTTERANCE, "name": "utterance_language"}], "drop": {"news_topic": "the desk no longer sorts news"}},
]
# what each way learns and is scored on: promise -> (its head, its data); the bench's own names for promises
DATA = {}


def changed(g: int, change: dict) -> list[str]:
    "Apply generation g's change to DATA; the promises whose data is new (what naive fine-tuning trains on)"
    for p in [p for p, (h, _) in DATA.items() if h in change.get("drop", {})]:
        del DATA[p]
    new = [(r["name"], r["task"]) if isinstance(r, dict) else (r, r) for r in change.get("new", [])]
    DATA.update({n: (n, ref) for n, ref in new})
    DATA.update({t: (t, ref) for t, ref in change.get("extend", {}).items()})
    DATA.update({f"{t}_zh": (t, ref) for t, ref in change.get("update", {}).items()})
    return [n for n, _ in new] + list(change.get("extend", {})) + [f"{t}_zh" for t in change.get("update", {})]


def task_of(promise: str, as_head: bool = True):
    "A promise's data, under its head's name (to train) or its own (to score)"
    head, ref = DATA[promise]
    return load_task(ref, seed=a.seed, name=head if as_head else promise)


def tasks_of(promises):
    "What a model trains on for `promises`: one task a head (a head serving several promises: their rows joined)"
    heads = {}
    for p in promises:
        heads.setdefault(DATA[p][0], []).append(p)
    return [task_of(ps[0]) if len(ps) == 1 else joined(h, ps) for h, ps in heads.items()]


def joined(head: str, promises: list):
    "One task of several promises' rows, each in its split (`lineage.joint_data`, as an update trains)"
    ps = [Promise(p, {"task": DATA[p][1]}, [], a.max_length, a.seed, None, 1.0, {}, head=head)
          for p in promises]
    ref = joint_data(ENCODERS, ps, Path(a.out) / "data" / f"joint-{head}.jsonl")
    return load_task(ref.task, seed=a.seed, name=head)


def scored(model, names, way, g, seconds):
    "Calibrate on valid (a copy), predict test: the row of one way at one generation, and its predictions"
    m = copy.deepcopy(model)
    calibrate(m, predictions(m, [task_of(p) for p in names if DATA[p][0] == p], "valid", max_length=a.max_length))
    for p in names:  # a promise served by another's head (an update's new data): that head, under its name
        if DATA[p][0] != p:
            h = DATA[p][0]
            m.heads[p], m.labels[p], m.temperatures[p] = m.heads[h], m.labels[h], m.temperatures.get(h, 1.0)
    ts = [task_of(p, as_head=False) for p in names]
    P = predictions(m, ts, "test", max_length=a.max_length)
    s = P.score()
    return dict(way=way, generation=g, seconds=seconds, S=s.S,
                accuracy={t: s.tasks[t].accuracy for t in names}, loss={t: s.tasks[t].loss for t in names}), P


def train(model, names, keep_best: bool = True):
    "Fine-tune `model` on the promises `names`; a head that does not know a task's classes grows first (extend)"
    ts = tasks_of(names)
    for t in ts:
        if model.has_head(t.name) and model.labels[t.name] != list(t.labels):
            grow_head(model, t, a.max_length, a.seed)
    r = fit(model, ts, method="full", max_steps=a.steps, batch_size=a.batch_size, max_length=a.max_length, seed=a.seed,
            keep_best=keep_best)  # keep_best: the step with the best valid S, which may be the start
    return r.train_seconds


def backward_transfer(rows, way, g, names, intro):
    now = next(r for r in rows if r["way"] == way and r["generation"] == g)
    d = [now["accuracy"][t] - next(r for r in rows if r["way"] == way and r["generation"] == intro[t])["accuracy"][t]
         for t in names if intro[t] < g]
    return float(np.mean(d)) if d else None


rows, promised, intro, cum = [], [], {}, {"lineage": 0.0, "naive": 0.0, "joint": 0.0}
base = MultiTaskModel.from_pretrained("default")
naive, parent = copy.deepcopy(base), "default"
out = Path(a.out)
for g, change in enumerate(GENERATIONS, 1):
    learnt = changed(g, change)
    promised = list(DATA)
    intro |= {t: g for t in learnt if t not in intro}
    t0 = time.perf_counter()  # the lineage way: one generation of the flow, then the promises checked
    spec = dict(change, model=parent, budget={"max_steps": a.steps}, **({} if g > 1 else SETTINGS))
    # force: the sequence goes on whatever the gate says (a user would stay with the parent and retry); the row's
    # `gate` records whether the child kept every promise or was shipped only because the bench forced it
    res, gen = run_generation(spec, out / f"g{g}", overwrite=True, force=True, progress=False)
    cum["lineage"] += sum(v.get("train_seconds", 0) or 0 for v in res.to_dict()["train"].values())
    parent = str(out / f"g{g}")
    lin = MultiTaskModel.load(out / f"g{g}" / "model")
    without_tasks(naive, [t for t in change.get("drop", {}) if naive.has_head(t)])  # naive: the new data alone
    cum["naive"] += train(naive, learnt, keep_best=False)  # naive: every step taken, the last weights kept
    joint = copy.deepcopy(base)  # joint: every promised task, from the base
    cum["joint"] += train(joint, promised)
    preds = {}
    for way, m in (("lineage", lin), ("naive", naive), ("joint", joint)):
        row, preds[way] = scored(m, promised, way, g, cum[way])
        row["gate"] = gen.gate.text() if (way == "lineage" and gen.gate) else None
        rows.append(row)
    for row in rows[-3:]:
        d = paired_diff(preds[row["way"]], preds["joint"])
        row |= {"S_vs_joint": d.diff, "S_vs_joint_se": d.se, "avg_accuracy": float(np.mean(list(row["accuracy"].values()))),
                "backward_transfer": backward_transfer(rows, row["way"], g, promised, intro)}
        print(json.dumps(row), flush=True)

print("\n| gen | way | avg accuracy | BWT | S | ΔS vs joint ± se | cumulative train s |\n|---|---|---|---|---|---|---|")
for r in rows:
    bwt = "-" if r["backward_transfer"] is None else f"{r['backward_transfer']:+.3f}"
    print(f"| {r['generation']} | {r['way']} | {r['avg_accuracy']:.3f} | {bwt} | {r['S']:.4f} | "
          f"{r['S_vs_joint']:+.4f} ± {r['S_vs_joint_se']:.4f} | {r['seconds']:.0f} |")
Path(a.results).parent.mkdir(parents=True, exist_ok=True)
json.dump({"settings": vars(a), "generations": GENERATIONS, "rows": rows}, open(a.results, "w"), indent=2)

import matplotlib.pyplot as plt
fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
for way in ("lineage", "naive", "joint"):
    rs = [r for r in rows if r["way"] == way]
    ax[0].plot([r["generation"] for r in rs], [r["avg_accuracy"] for r in rs], "o-", label=way)
    ax[1].plot([r["generation"] for r in rs], [r["seconds"] for r in rs], "o-", label=way)
ax[0].set(xlabel="generation", ylabel="average test accuracy over promised tasks"); ax[0].legend()
ax[1].set(xlabel="generation", ylabel="cumulative training seconds")
fig.savefig(Path(a.results).with_suffix(".png"), dpi=110, bbox_inches="tight")
print(f"wrote {a.results} and {Path(a.results).with_suffix('.png')}; the lineage: adaptnb lineage {out}")
