"""Compression table for adaptnb.deploy: size on disk, CPU latency per batch, accuracy and S change vs fp32.

Linear probes (adaptnb.heads.init_heads) on the default encoder for news_topic and movie_sentiment, exported as
fp32, int8, pruned to 0.3/0.5/0.7 and pruned 0.5 + int8; each artifact is reloaded and scored on the test splits.
Usage: python bench/deploy_compression.py [--max-per-class 400] [--max-length 64] [--repeats 5] [--json out.json]
The last line is the int8/fp32 ratio of weights size and of latency.
"""
import argparse, json, os, sys, tempfile, time
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import pandas as pd
from adaptnb.core import MultiTaskModel, seed_everything, save_json
from adaptnb.data import load_task
from adaptnb.heads import init_heads
from adaptnb.deploy import compression_table

ap = argparse.ArgumentParser()
ap.add_argument("--max-per-class", type=int, default=400)
ap.add_argument("--max-length", type=int, default=64)
ap.add_argument("--repeats", type=int, default=5)
ap.add_argument("--json", default=None)
a = ap.parse_args()
seed_everything(0)
t0 = time.perf_counter()
tasks = [load_task(n, max_per_class=a.max_per_class) for n in ("news_topic", "movie_sentiment")]
model = MultiTaskModel.from_pretrained("default").eval()
init_heads(model, tasks, max_length=a.max_length)
print({t.name: t.sizes for t in tasks}, f"probes fit in {time.perf_counter() - t0:.0f}s", flush=True)
with tempfile.TemporaryDirectory() as d:
    tab = compression_table(model, tasks, folder=d, max_length=a.max_length, repeats=a.repeats)
with pd.option_context("display.width", 220, "display.max_columns", 20, "display.precision", 4): print(tab)
if a.json: save_json(tab.reset_index(names="option").to_dict(orient="records"), a.json)
print(f"total {time.perf_counter() - t0:.0f}s")
r = tab.loc["int8"] / tab.loc["fp32"]
print(f"int8/fp32: weights size {r['weights MiB']:.3f}, latency {r['ms/batch']:.3f}")
