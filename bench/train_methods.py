"""Test accuracy of full, freeze, LoRA and retrain at one small budget on the embedded news-topic and movie-sentiment tasks.

Small data on purpose (the question is whether a pretrained base pays off when examples are few): `--n-train`
training texts per task (a seeded random subset of the train split), the whole valid split capped at 300 for
evaluation, the whole test split for the reported numbers; the same steps, batch and length for every method,
each method at its default learning rate. `--bf16` adds a full fine-tune under bf16 autocast to compare with fp32.

    python bench/train_methods.py [--n-train 400] [--steps 100] [--batch-size 16] [--max-length 64]
"""
import argparse, copy, dataclasses, json, os, time
os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("ADAPTNB_NO_PROGRESS", "1")
import numpy as np
from adaptnb.core import MultiTaskModel
from adaptnb.data import load_task
from adaptnb.train import TrainConfig, fit

ap = argparse.ArgumentParser()
ap.add_argument("--tasks", default="news_topic,movie_sentiment"); ap.add_argument("--methods", default="full,freeze,lora,retrain")
ap.add_argument("--n-train", type=int, default=400); ap.add_argument("--steps", type=int, default=100)
ap.add_argument("--batch-size", type=int, default=16); ap.add_argument("--max-length", type=int, default=64)
ap.add_argument("--test-max", type=int, default=None, help="cap each test split (a fixed seeded subset) for quick runs")
ap.add_argument("--bf16", action="store_true"); ap.add_argument("--json", default=None)
a = ap.parse_args()

base = MultiTaskModel.from_pretrained("default")
rows = []
for tn in a.tasks.split(","):
    t = load_task(tn)
    ix = np.sort(np.random.default_rng(0).permutation(len(t.train))[:a.n_train])
    t = dataclasses.replace(t, train=t.train.select(ix))
    if a.test_max and len(t.test) > a.test_max:
        t = dataclasses.replace(t, test=t.test.select(np.sort(np.random.default_rng(1).permutation(len(t.test))[:a.test_max])))
    runs = [(m, "auto") for m in a.methods.split(",")] + ([("full", "bf16")] if a.bf16 else [])
    for method, prec in runs:
        cfg = TrainConfig(method=method, max_steps=a.steps, batch_size=a.batch_size, max_length=a.max_length, eval_every=max(1, a.steps // 5),
                          eval_max=200, precision=prec, seed=0)
        r = fit(copy.deepcopy(base), t, cfg)
        m = r.test[tn]
        rows.append(dict(task=tn, method=method + ("/bf16" if prec == "bf16" else ""), n_train=len(t.train), steps=r.steps, accuracy=m["accuracy"],
                         macro_f1=m["macro_f1"], loss=m["loss"], n_test=m["n"], seconds=r.train_seconds, best_step=r.best_step))
        print(json.dumps(rows[-1]), flush=True)
print(f"\n| task | method | test accuracy | macro-F1 | test loss | n test | train s |\n|---|---|---|---|---|---|---|")
for r in rows: print(f"| {r['task']} | {r['method']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['loss']:.3f} | {r['n_test']} | {r['seconds']:.0f} |")
if a.json: json.dump(rows, open(a.json, "w"), indent=2)
