"""bf16 autocast against fp32 on the CPU: does bf16 change what `fit` learns, or what `score` measures?

For each embedded task and seed, LP-FT (method full, from one fp32 probe head per task, the flow's learning rate)
trains the same base twice, once in fp32 and once under bf16 autocast, with the same seed and data order. Both models are scored on
the whole test split in fp32, and the paired difference of their per-example losses (bf16 − fp32) is reported with
its standard error; across seeds, the mean difference is set against the spread that the seed alone gives (the
fp32 runs of two seeds). For `score`, the fp32-trained model is scored twice, in fp32 and under bf16 autocast: the
largest per-example loss difference, the share of predictions that agree, and ΔS.

Each run is written to --out as it finishes, so a killed bench keeps what it measured. Wall times are printed,
but timing is `bench/train.py`'s job: this one may share the machine.

    python bench/precision.py [--steps 120] [--seeds 0 1 2] [--tasks news_topic movie_sentiment ...] [--out F]
"""
import argparse, copy, json, math, os, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ADAPTNB_NO_PROGRESS", "1")
import numpy as np
import torch

from adaptnb.core import MultiTaskModel, autocast_dtype
from adaptnb.data import load_task
from adaptnb.heads import init_heads
from adaptnb.score import paired_diff, predictions
from adaptnb.train import TrainConfig, fit

TASKS = ["news_topic", "movie_sentiment", "zh_review_sentiment", "utterance_language"]
ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=120)
ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
ap.add_argument("--tasks", nargs="+", default=TASKS)
ap.add_argument("--batch-size", type=int, default=16)
ap.add_argument("--max-length", type=int, default=64)
ap.add_argument("--out", default="bench/precision.json")
a = ap.parse_args()
if autocast_dtype("cpu", "bf16") is None or not torch.ops.mkldnn._is_mkldnn_bf16_supported():
    raise SystemExit("this CPU has no native bf16 (AVX512_BF16 or AMX): nothing to compare")

out = Path(a.out)
done = json.loads(out.read_text()) if out.exists() else {"runs": []}
have = {(r["task"], r["seed"]) for r in done["runs"]}
base = MultiTaskModel.from_pretrained("default")


def train(probed, task, seed: int, precision: str) -> tuple[MultiTaskModel, float]:
    "LP-FT of a copy of the probed base, as the flow's lp-ft candidate trains (no early stopping: the whole budget)"
    m = copy.deepcopy(probed)
    cfg = TrainConfig(method="full", lr=3e-5, head_lr=3e-5, max_steps=a.steps, batch_size=a.batch_size,
                      max_length=a.max_length, seed=seed, eval_every=a.steps, eval_max=200, keep_best=False,
                      precision=precision, device="cpu")
    t0 = time.perf_counter()
    fit(m, task, cfg)
    return m, time.perf_counter() - t0


def scored(m, task, dtype):
    return predictions(m, task, "test", max_length=a.max_length, device="cpu", dtype=dtype, cache=False)


for name in a.tasks:
    task = load_task(name)
    if all((name, seed) in have for seed in a.seeds):
        continue
    probed = copy.deepcopy(base)  # LP: one fp32 probe head per task, the start of every run of that task
    init_heads(probed, [task], how="probe", max_length=a.max_length, seed=0)
    for seed in a.seeds:
        if (name, seed) in have:
            continue
        m32, s32 = train(probed, task, seed, "fp32")
        m16, s16 = train(probed, task, seed, "bf16")
        p32, p16 = scored(m32, task, torch.float32), scored(m16, task, torch.float32)
        q32 = scored(m32, task, torch.bfloat16)  # the fp32 model, scored under bf16 autocast
        fit_d, score_d = paired_diff(p16, p32), paired_diff(q32, p32)
        s = {k: p.score().tasks[name] for k, p in (("fp32", p32), ("bf16", p16))}
        run = {
            "task": name, "seed": seed, "n_test": len(p32.labels[name]),
            "fit": {k: {"S": v.loss, "accuracy": v.accuracy, "seconds": round(t, 1)}
                    for (k, v), t in zip(s.items(), (s32, s16))},
            "fit_diff": fit_d.diff, "fit_diff_se": fit_d.se,
            "score_diff": score_d.diff, "score_diff_se": score_d.se,
            "score_max_abs": float(np.max(np.abs(q32.losses(name) - p32.losses(name)))),
            "score_agree": float(np.mean(q32.preds(name) == p32.preds(name))),
        }
        done["runs"].append(run)
        out.write_text(json.dumps(done, indent=1))
        f = run["fit"]
        print(f"{name} seed {seed}: test loss fp32 {f['fp32']['S']:.4f} bf16 {f['bf16']['S']:.4f} "
              f"(Δ {fit_d.diff:+.4f} ± {fit_d.se:.4f}); acc {f['fp32']['accuracy']:.3f} / {f['bf16']['accuracy']:.3f}; "
              f"score under bf16: max |Δloss| {run['score_max_abs']:.2e}, agree {run['score_agree']:.4f}; "
              f"fit s {s32:.0f} / {s16:.0f}", flush=True)

# per task: the mean bf16 − fp32 difference over seeds against the seed-to-seed spread of fp32 (paired, same examples)
print(f"\n| task | n test | seeds | test loss fp32 | test loss bf16 | Δ bf16 − fp32 ± se | seed spread (fp32, |Δ| of two seeds) "
      f"| acc fp32 | acc bf16 | score: ΔS | score: max abs Δ loss | score: agree |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
summary = {}
for name in a.tasks:
    rs = [r for r in done["runs"] if r["task"] == name]
    if not rs:
        continue
    d = np.array([r["fit_diff"] for r in rs])
    se = math.sqrt(sum(r["fit_diff_se"] ** 2 for r in rs)) / len(rs)  # per-example noise of the mean
    se = max(se, d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else se  # or the run-to-run spread, if larger
    l = [r["fit"]["fp32"]["S"] for r in rs]
    spread = float(np.mean([abs(l[i] - l[j]) for i in range(len(l)) for j in range(i + 1, len(l))])) \
        if len(l) > 1 else float("nan")
    mean = lambda k, p: float(np.mean([r["fit"][p][k] for r in rs]))
    summary[name] = {"diff": float(d.mean()), "se": se, "seed_spread": spread}
    print(f"| {name} | {rs[0]['n_test']} | {len(rs)} | {mean('S', 'fp32'):.4f} | {mean('S', 'bf16'):.4f} | "
          f"{d.mean():+.4f} ± {se:.4f} | {spread:.4f} | {mean('accuracy', 'fp32'):.3f} | {mean('accuracy', 'bf16'):.3f} | "
          f"{np.mean([r['score_diff'] for r in rs]):+.5f} | {max(r['score_max_abs'] for r in rs):.1e} | {min(r['score_agree'] for r in rs):.4f} |")
done["summary"] = summary
out.write_text(json.dumps(done, indent=1))
