"""Scaling: time and peak memory of `score` and `fit` as the data grows 1x, 4x, 16x.

Two sets (`--sets`):
- movie: 1x is movie_sentiment's whole train split (10,202 texts); 4x and 16x repeat it (16x: 163,232 texts);
- mixed: the four embedded classification tasks' train splits pooled into one 37-class task (label "task:label";
  28 languages, news articles to short utterances), drawn in a seeded order and cycled to 10,000 x the
  multiple (16x: 160,000 texts).

Each measurement runs in a fresh process, so that its peak resident memory (ru_maxrss) is its own; the model, its
probe head (fit on the set's first 800 texts) and the tokenizer are the same in every process of a set.

- score: every text of the set, one pass (`score.predictions`, cold: no feature cache), texts/s and peak memory;
- fit: a fixed number of steps (`--fit-steps`) on the set, so that what grows with the data is only what `fit` does
  once per set (reading, tokenizing and bucketing it) and what it holds in memory. Time per epoch is then the steps'
  rate times the set's batches, and is printed alongside.

Linear scaling means score's texts/s stays flat across sizes; flat memory means peak RSS does not grow with the set.

    python bench/scale.py [--sets movie,mixed] [--sizes 1,4,16] [--fit-steps 40] [--max-length 64]
                          [--out bench/results/scale.json]
"""
import argparse, json, os, resource, subprocess, sys, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SETS = ("movie", "mixed")
MIXED_1X = 10_000  # texts in the mixed set at 1x


def _movie(mult: int):
    "movie_sentiment with its train split repeated `mult` times"
    import dataclasses
    from datasets import concatenate_datasets
    from adaptnb.data import load_task

    t = load_task("movie_sentiment")
    return dataclasses.replace(t, train=concatenate_datasets([t.train] * mult) if mult > 1 else t.train)


def _mixed(mult: int):
    "The embedded classification tasks pooled into one task (label 'task:label'), train cycled to MIXED_1X x `mult`"
    import numpy as np
    from datasets import Dataset
    from adaptnb.data import EMBEDDED, Task, load_task

    tasks = [load_task(n) for n in sorted(EMBEDDED)]
    first = {t.name: sum(len(u.labels) for u in tasks[:i]) for i, t in enumerate(tasks)}  # each task's first class

    def pool(split: str, n: int | None = None) -> Dataset:
        texts = [x for t in tasks for x in t.split(split)["text"]]
        codes = [first[t.name] + c for t in tasks for c in t.split(split)["label"]]
        order = np.random.default_rng(0).permutation(len(texts))
        order = np.resize(order, n) if n else order  # cycled through the same order to n texts
        return Dataset.from_dict({"text": [texts[i] for i in order], "label": [codes[i] for i in order]})

    return Task("mixed", pool("train", MIXED_1X * mult), pool("valid"), pool("test"),
                labels=[f"{t.name}:{l}" for t in tasks for l in t.labels], language="mul", source="the embedded tasks")


def _task(name: str, mult: int):
    "The set `name` at `mult` times its 1x size"
    return (_movie if name == "movie" else _mixed)(mult)


def _model(name: str, max_length: int):
    "The default encoder with a probe head for the set `name`, fit on its first 800 train texts"
    import dataclasses
    from adaptnb.core import MultiTaskModel, seed_everything
    from adaptnb.heads import fit_probe

    seed_everything(0)
    mt = MultiTaskModel.from_pretrained("default")
    t = _task(name, 1)
    fit_probe(mt, dataclasses.replace(t, train=t.train.select(range(800))), max_length=max_length)
    return mt


def one(name: str, kind: str, mult: int, max_length: int, fit_steps: int) -> dict:
    "One measurement, in this process: {set, kind, mult, n, seconds, rate, peak_rss_mib, ...}"
    from adaptnb.score import predictions
    from adaptnb.train import TrainConfig, fit

    mt = _model(name, max_length)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    task = _task(name, mult)
    n = len(task.train)
    if kind == "score":
        p = predictions(mt, [task], "train", max_length=max_length, cache=False)
        seconds = time.perf_counter() - t0
        extra = {"rate": round(n / seconds, 1), "S": round(float(p.score().S), 4)}
    else:
        cfg = TrainConfig(method="full", max_steps=fit_steps, batch_size=32, max_length=max_length,
                          eval_every=fit_steps, eval_max=200, keep_best=False, seed=0)
        r = fit(mt, task, cfg)
        seconds = time.perf_counter() - t0
        batches = -(-n // cfg.batch_size)
        step_s = r.train_seconds / max(r.steps, 1)
        extra = {"steps": r.steps, "train_seconds": round(r.train_seconds, 2), "setup_seconds": round(seconds - r.train_seconds, 2),
                 "epoch_seconds_projected": round(step_s * batches, 1)}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"set": name, "kind": kind, "mult": mult, "n": n, "seconds": round(seconds, 2), **extra,
            "peak_rss_mib": round(peak), "rss_after_model_mib": round(rss0)}


def plot(rows: list[dict], path: Path):
    "Seconds and peak memory against the set's size, for score and fit on each set"
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, colour in zip(SETS, ("C0", "C1")):
        for kind, m in (("score", "o-"), ("fit", "s--")):
            rs = [r for r in rows if r.get("set", "movie") == name and r["kind"] == kind]
            if not rs:
                continue
            n = [r["n"] for r in rs]
            lab = f"{name}: " + ("score (every text)" if kind == "score" else f"fit ({rs[0]['steps']} steps)")
            ax[0].plot(n, [r["seconds"] for r in rs], m, c=colour, label=lab)
            ax[1].plot(n, [r["peak_rss_mib"] for r in rs], m, c=colour, label=lab)
            if kind == "score":
                ax[0].plot(n, [rs[0]["seconds"] * k / n[0] for k in n], ":", c="grey",
                           label="linear from 1x" if name == SETS[0] else None)
    ax[0].set(xscale="log", yscale="log", xlabel="texts in the set", ylabel="seconds", title="time")
    ax[1].set(xscale="log", xlabel="texts in the set", ylabel="peak RSS (MiB)", title="peak memory", ylim=(0, None))
    for a in ax:
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _names(allowed: tuple, what: str):
    "An argparse type: a comma-separated list drawn from `allowed`, one line naming the choices otherwise"
    def parse(s: str) -> list[str]:
        v = [x for x in s.split(",") if x]
        if not v or set(v) - set(allowed):
            raise argparse.ArgumentTypeError(f"{s!r} is not a list of {what}: choose from {','.join(allowed)}")
        return v
    return parse


def _sizes(s: str) -> list[int]:
    "The value of --sizes: positive whole multiples, comma-separated"
    try:
        v = [int(x) for x in s.split(",")]
    except ValueError:
        v = []
    if not v or min(v) < 1:
        raise argparse.ArgumentTypeError(f"{s!r} is not a list of multiples: use e.g. --sizes 1,4,16")
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=_names(SETS, "sets"), default=list(SETS), help="movie, mixed or both")
    ap.add_argument("--sizes", type=_sizes, default=[1, 4, 16], help="multiples of each set's 1x size")
    ap.add_argument("--kinds", type=_names(("score", "fit"), "kinds"), default=["score", "fit"], help="score, fit or both")
    ap.add_argument("--fit-steps", type=int, default=40)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--out", default="bench/results/scale.json")
    ap.add_argument("--one", nargs=3, metavar=("SET", "KIND", "MULT"), help=argparse.SUPPRESS)  # a single measurement
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one[0], a.one[1], int(a.one[2]), a.max_length, a.fit_steps)))
        return
    rows = []
    for name in a.sets:
        for mult in a.sizes:
            for kind in a.kinds:
                cmd = [sys.executable, __file__, "--one", name, kind, str(mult), "--max-length", str(a.max_length),
                       "--fit-steps", str(a.fit_steps)]
                r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, ADAPTNB_NO_PROGRESS="1"))
                if r.returncode:
                    sys.exit(f"{kind} on {name} at {mult}x failed:\n{r.stderr[-3000:]}")
                rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"torch_threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or None, "rows": rows}, indent=1))
    plot(rows, out.with_suffix(".png"))
    print(f"{'set':6} {'kind':6} {'x':>3} {'texts':>7} {'seconds':>8} {'texts/s':>8} {'peak MiB':>9}")
    for r in rows:
        rate = r.get("rate") or ""
        print(f"{r['set']:6} {r['kind']:6} {r['mult']:>3} {r['n']:>7} {r['seconds']:>8} {rate:>8} {r['peak_rss_mib']:>9}")
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
