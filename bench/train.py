"""Throughput of `adaptnb.train.fit` against Hugging Face `Trainer` on the same model, data, batch, length and steps.

Runs are interleaved (fit, Trainer default, Trainer best, then again) and the median samples/s of each setting is
compared. Trainer default: fp32, every text padded to max_length. Trainer best at fit's precision:
DataCollatorWithPadding + train_sampling_strategy="group_by_length" (transformers 5's name for group_by_length),
bf16 when fit uses bf16 (CUDA). Throughput is timed between the end of the first optimiser step and the end
of the last one, so loading, compilation of the first step and evaluation are excluded for both.
Also printed: the fraction of the machine's measured matmul peak that fit achieves (FLOPs per token
~ 6 x non-embedding parameters + 12 x layers x hidden x sequence length for attention) and the peak RSS.

    python bench/train.py [--steps 12] [--rounds 2] [--n 2048]
"""
import argparse, dataclasses, os, resource, statistics, sys, tempfile, time
os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("ADAPTNB_NO_PROGRESS", "1")
import numpy as np
import torch
from adaptnb.core import MultiTaskModel, autocast_dtype, get_device, load_tokenizer, resolve_model
from adaptnb.data import load_task
from peak import matmul_peak
from adaptnb.train import Callback, TrainConfig, fit

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=12); ap.add_argument("--rounds", type=int, default=2)
ap.add_argument("--n", type=int, default=2048); ap.add_argument("--batch-size", type=int, default=32); ap.add_argument("--max-length", type=int, default=128)
a = ap.parse_args()
BS, ML, STEPS = a.batch_size, a.max_length, a.steps
dev = get_device(); dtype = autocast_dtype(dev)
prec = "bf16" if dtype == torch.bfloat16 else "fp32"

# data: movie-review snippets and news articles (truncated), varied lengths; one label set (sentiment) for both runners
movie = load_task("movie_sentiment")
tr = movie.train.select(range(min(a.n, len(movie.train))))
task = dataclasses.replace(movie, train=tr, valid=movie.valid.select(range(32)), test=movie.test.select(range(32)))
tok = load_tokenizer("default")
lens = np.array([len(x) for x in tok(list(tr["text"]), truncation=True, max_length=ML)["input_ids"]])
print(f"device {dev}, precision {prec}, {len(tr)} texts, tokens per text: median {np.median(lens):.0f}, p90 {np.percentile(lens, 90):.0f}, max {lens.max()}; "
      f"batch {BS}, max_length {ML}, {STEPS} steps x {a.rounds} rounds")

class Clock(Callback):
    def __init__(self): self.t = {}
    def after_step(self, run, step, loss): self.t[step] = time.perf_counter()

def run_fit():
    m = MultiTaskModel.from_pretrained("default")
    c = Clock()
    fit(m, task, TrainConfig(max_steps=STEPS, batch_size=BS, max_length=ML, eval_every=10**6, eval_max=32, keep_best=False, lr=1e-4), callbacks=[c])
    return (STEPS - 1) * BS / (c.t[STEPS] - c.t[1])

def run_trainer(best: bool):
    from transformers import (AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments,
                              default_data_collator)
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model("default"), num_labels=2)
    if best: ds = tr.map(lambda b: tok(b["text"], truncation=True, max_length=ML), batched=True, remove_columns=["text"])
    else: ds = tr.map(lambda b: tok(b["text"], truncation=True, max_length=ML, padding="max_length"), batched=True, remove_columns=["text"])
    ds = ds.rename_column("label", "labels")
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state()   # fit's Accelerator and the Trainer's own may differ in settings
    t = {}
    class CB(TrainerCallback):
        def on_step_end(self, args, state, control, **kw): t[state.global_step] = time.perf_counter()
    kw = dict(train_sampling_strategy="group_by_length", bf16=(prec == "bf16")) if best else {}
    args = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=BS, max_steps=STEPS, learning_rate=1e-4,
                             report_to=[], save_strategy="no", logging_strategy="no", disable_tqdm=True, use_cpu=dev.type == "cpu",
                             dataloader_num_workers=0, seed=0, **kw)
    Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok) if best else default_data_collator,
            callbacks=[CB()]).train()
    return (STEPS - 1) * BS / (t[STEPS] - t[1])

res = {"fit": [], "trainer_default": [], "trainer_best": []}
for r in range(a.rounds):
    res["fit"].append(run_fit()); res["trainer_default"].append(run_trainer(False)); res["trainer_best"].append(run_trainer(True))
    print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in res.items()), "samples/s", flush=True)
med = {k: statistics.median(v) for k, v in res.items()}

cfg = MultiTaskModel.from_pretrained("default").body.config
nonemb = sum(p.numel() for n, p in MultiTaskModel.from_pretrained("default").body.named_parameters() if "embeddings" not in n and "pooler" not in n)
# fit pads each length-bucketed batch to its longest text: about the mean token count plus a little
seq = float(np.mean(lens)); flops_tok = 6 * nonemb + 12 * cfg.num_hidden_layers * cfg.hidden_size * seq
peak = matmul_peak(dev, dtype)
achieved = med["fit"] * seq * flops_tok
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"median samples/s: fit {med['fit']:.1f}, Trainer default {med['trainer_default']:.1f}, Trainer best ({prec}) {med['trainer_best']:.1f}")
print(f"matmul peak {peak / 1e9:.1f} GFLOP/s ({prec}); fit achieves {achieved / 1e9:.1f} GFLOP/s = {achieved / peak:.1%} of it "
      f"({flops_tok / 1e6:.1f} MFLOP per token, {seq:.0f} tokens per text); peak RSS {rss:.0f} MiB")
print(f"ratio fit / Trainer default: {med['fit'] / med['trainer_default']:.2f}x; fit / Trainer best: {med['fit'] / med['trainer_best']:.2f}x")
