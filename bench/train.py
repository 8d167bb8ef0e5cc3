"""Throughput of `adaptnb.train.fit` against Hugging Face `Trainer` on the same model, data, batch, length and steps,
and the levers inside `fit`, each measured rather than guessed.

Runs are interleaved round by round (fit, Trainer default, Trainer best, each lever, then again), and each setting
is reported as its median samples/s with min-max, its ratio to fit, and the share of the machine's measured matmul
peak it reaches (FLOPs per token ~ 6 x non-embedding parameters + 12 x layers x hidden x tokens for attention,
counted on the real, unpadded tokens). Trainer default: every text padded to max_length. Trainer best:
DataCollatorWithPadding + train_sampling_strategy="group_by_length" (transformers 5's name for group_by_length) and
the same autocast precision as fit. Both use fused AdamW (the Trainer's default optimiser since torch 2.8, fit's
since this bench measured it). Throughput is timed from the end of the first optimiser step to the end of the last,
so loading, the first step's warm-up and the final evaluation are excluded for every runner.

Levers (`--levers`), each fit with one thing changed:
  per-tensor AdamW    torch's default AdamW loop on CPU (fit's optimiser before)
  foreach AdamW       the multi-tensor AdamW
  no buckets          batches drawn at random and padded to their longest (no length bucketing)
  whole-epoch sort    the tightest bucketing: the epoch sorted by length before it is cut into batches
  pad to max_length   static shapes: every batch padded to max_length
  own padding         each batch padded by numpy, not by the tokenizer's `pad` (no per-step tokenizer call)
  SDPA flash          attention dropout 0, so SDPA may take its fused kernel (dropout needs the math path on CPU)
  1 thread            torch.set_num_threads(1)
  torch dropout       nn.Dropout's own masks (a bernoulli draw per element) instead of fit's BitDropout (four per draw)
and two that change what is trained, for what they would buy (not used by fit):
  no hidden dropout   the hidden layers' dropout off (attention dropout kept)
  frozen embeddings   the word embeddings fixed (no gradient, no AdamW state for 11.7M of 22.7M parameters)
  compile             torch.compile(body, dynamic=True) on length-bucketed batches

    python bench/train.py [--precision bf16|fp32|both] [--steps 24] [--rounds 4] [--n 2048] [--levers [NAME ...]]
"""
import argparse, dataclasses, functools, json, os, resource, statistics, tempfile, time
from pathlib import Path
os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("ADAPTNB_NO_PROGRESS", "1")
import numpy as np
import torch
import adaptnb.data as D
import adaptnb.train as T
from adaptnb.core import MultiTaskModel, autocast_dtype, get_device, load_tokenizer, resolve_model
from adaptnb.data import load_task
from peak import flops_per_token, matmul_peak

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=24); ap.add_argument("--rounds", type=int, default=4)
ap.add_argument("--n", type=int, default=2048); ap.add_argument("--batch-size", type=int, default=32)
ap.add_argument("--max-length", type=int, default=128); ap.add_argument("--precision", default="auto", help="bf16 | fp32 | both | auto (the device's)")
ap.add_argument("--levers", nargs="*", default=None, help="also measure these levers inside fit (none named: every one)")
ap.add_argument("--json", default=None, help="write the medians here")
a = ap.parse_args()
BS, ML, STEPS = a.batch_size, a.max_length, a.steps
dev = get_device()
precs = ["bf16", "fp32"] if a.precision == "both" else ["bf16" if autocast_dtype(dev) == torch.bfloat16 else "fp32"] if a.precision == "auto" else [a.precision]

movie = load_task("movie_sentiment")
tr = movie.train.select(range(min(a.n, len(movie.train))))
task = dataclasses.replace(movie, train=tr, valid=movie.valid.select(range(32)), test=movie.test.select(range(32)))
tok = load_tokenizer("default")
lens = np.array([len(x) for x in tok(list(tr["text"]), truncation=True, max_length=ML)["input_ids"]])
print(f"device {dev}, precision {'+'.join(precs)}, {len(tr)} texts, tokens per text: median {np.median(lens):.0f}, p90 {np.percentile(lens, 90):.0f}, "
      f"max {lens.max()}; batch {BS}, max_length {ML}, {STEPS} steps x {a.rounds} rounds, torch {torch.__version__}, {torch.get_num_threads()} threads")


class Clock(T.Callback):
    def __init__(self): self.t = {}
    def after_step(self, run, step, loss): self.t[step] = time.perf_counter()


def _pad_to_max(self, model, items):
    ids = [x for x, _ in items]
    b = model.tokenizer.pad({"input_ids": ids}, padding="max_length", max_length=ML, return_tensors="pt")
    return dict(b) | {"labels": torch.as_tensor([y for _, y in items])}


def _own_pad(self, model, items):
    n = max(len(x) for x, _ in items)
    ids = np.full((len(items), n), model.tokenizer.pad_token_id, dtype=np.int64); mask = np.zeros((len(items), n), dtype=np.int64)
    for i, (x, _) in enumerate(items): ids[i, : len(x)], mask[i, : len(x)] = x, 1
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask), "labels": torch.as_tensor([y for _, y in items])}


def _adamw(**kw):
    return lambda model, cfg, device: torch.optim.AdamW(T._param_groups(model, cfg), lr=cfg.peak_lr, **kw)


LEVERS = {  # name -> (what to patch: list of (object, attribute, value)), what to do to the model, threads
    "per-tensor AdamW": ([(T, "_optimizer", _adamw(foreach=False))], None, None),
    "foreach AdamW": ([(T, "_optimizer", _adamw(foreach=True))], None, None),
    "no buckets": ([(T, "length_batches", functools.partial(D.length_batches, bucket=1))], None, None),
    "whole-epoch sort": ([(T, "length_batches", functools.partial(D.length_batches, bucket=10**6))], None, None),
    "pad to max_length": ([(T.EncoderFamily, "collate", _pad_to_max)], None, None),
    "own padding": ([(T.EncoderFamily, "collate", _own_pad)], None, None),
    "SDPA flash": ([], "no_attention_dropout", None),
    "1 thread": ([], None, 1),
    "torch dropout": ([(T, "use_bit_dropout", lambda model: 0)], None, None),
    "compile": ([], "compile", None),
    "no hidden dropout": ([], "no_hidden_dropout", None),
    "frozen embeddings": ([], "frozen_embeddings", None),
}
if set(a.levers or []) - set(LEVERS):
    ap.error(f"unknown lever(s) {sorted(set(a.levers) - set(LEVERS))}: choose from {list(LEVERS)}")


def run_fit(prec: str, lever: str | None = None):
    patches, change, threads = LEVERS[lever] if lever else ([], None, None)
    saved = [(o, k, getattr(o, k)) for o, k, _ in patches]
    for o, k, v in patches: setattr(o, k, v)
    n_threads = torch.get_num_threads()
    if threads: torch.set_num_threads(threads)
    try:
        m = MultiTaskModel.from_pretrained("default")
        if change == "no_attention_dropout":
            for mod in m.body.modules():
                if hasattr(mod, "dropout_prob"): mod.dropout_prob = 0.0
        if change == "no_hidden_dropout":
            for mod in m.body.modules():
                if isinstance(mod, torch.nn.Dropout): mod.p = 0.0
        if change == "frozen_embeddings":  # after the method's set-up, which would turn the gradient back on
            T.EncoderFamily.prepare, prep = (lambda self, *x, p=T.EncoderFamily.prepare: (p(self, *x), m.body.embeddings.word_embeddings.weight.requires_grad_(False))), T.EncoderFamily.prepare
            saved.append((T.EncoderFamily, "prepare", prep))
        if change == "compile":
            m.body = torch.compile(m.body, dynamic=True)
        c = Clock()
        T.fit(m, task, T.TrainConfig(max_steps=STEPS, batch_size=BS, max_length=ML, eval_every=10**6, eval_max=32, keep_best=False, lr=1e-4,
                                     precision=prec), callbacks=[c])
        return (STEPS - 1) * BS / (c.t[STEPS] - c.t[1])
    finally:
        for o, k, v in saved: setattr(o, k, v)
        torch.set_num_threads(n_threads)


def run_trainer(prec: str, best: bool):
    from transformers import (AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments,
                              default_data_collator)
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model("default"), num_labels=2)
    pad = {} if best else {"padding": "max_length"}
    ds = tr.map(lambda b: tok(b["text"], truncation=True, max_length=ML, **pad), batched=True, remove_columns=["text"]).rename_column("label", "labels")
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state()   # fit's Accelerator and the Trainer's own may differ in settings
    t = {}
    class CB(TrainerCallback):
        def on_step_end(self, args, state, control, **kw): t[state.global_step] = time.perf_counter()
    kw = dict(train_sampling_strategy="group_by_length") if best else {}
    args = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=BS, max_steps=STEPS, learning_rate=1e-4,
                             report_to=[], save_strategy="no", logging_strategy="no", disable_tqdm=True, use_cpu=dev.type == "cpu",
                             dataloader_num_workers=0, seed=0, bf16=(prec == "bf16"), **kw)
    Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok) if best else default_data_collator,
            callbacks=[CB()]).train()
    return (STEPS - 1) * BS / (t[STEPS] - t[1])


settings = {}
for p in precs:
    settings[f"fit {p}"] = functools.partial(run_fit, p)
    settings[f"Trainer default {p}"] = functools.partial(run_trainer, p, False)
    settings[f"Trainer best {p}"] = functools.partial(run_trainer, p, True)
    if a.levers is not None:
        for lv in a.levers or LEVERS:
            settings[f"fit {p}, {lv}"] = functools.partial(run_fit, p, lv)
res = {k: [] for k in settings}
for r in range(a.rounds):
    for k, f in settings.items():
        try:
            res[k].append(f())
        except Exception as e:  # a lever that cannot run here is reported, not fatal
            print(f"  {k}: failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}", flush=True)
    print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in res.items() if v), "samples/s", flush=True)

seq = float(np.mean(lens)); flops_tok = flops_per_token(MultiTaskModel.from_pretrained("default").body, seq)
peaks = {p: matmul_peak(dev, torch.bfloat16 if p == "bf16" else None) for p in precs}
rows = {}
print(f"\n{'setting':34s} {'samples/s median (min-max)':>28s} {'vs fit':>7s} {'% matmul peak':>14s}")
for k, v in res.items():
    if not v: continue
    p = "bf16" if "bf16" in k.split(",")[0] else "fp32"
    med, ref = statistics.median(v), statistics.median(res[f"fit {p}"]) if res[f"fit {p}"] else float("nan")
    share = med * seq * flops_tok / peaks[p]
    rows[k] = {"median": round(med, 2), "min": round(min(v), 2), "max": round(max(v), 2), "vs_fit": round(med / ref, 3), "peak_share": round(share, 4)}
    print(f"{k:34s} {med:10.1f} ({min(v):.1f}-{max(v):.1f}){'':8s} {med / ref:6.2f}x {share:13.1%}")
for p in precs:
    f, tb, td = (statistics.median(res[k]) for k in (f"fit {p}", f"Trainer best {p}", f"Trainer default {p}"))
    print(f"{p}: fit / Trainer best {f / tb:.2f}x, fit / Trainer default {f / td:.2f}x; matmul peak {peaks[p] / 1e9:.1f} GFLOP/s")
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{flops_tok / 1e6:.1f} MFLOP per token, {seq:.1f} real tokens per text; peak RSS {rss:.0f} MiB")
if a.json:
    Path(a.json).write_text(json.dumps({"device": str(dev), "batch_size": BS, "max_length": ML, "steps": STEPS, "rounds": a.rounds,
                                        "tokens_per_text": seq, "peak_flops": peaks, "settings": rows}, indent=1))
