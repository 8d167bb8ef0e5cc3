"""Evaluation throughput: `adaptnb.score` against `transformers.pipeline("text-classification")`.

Both compute the same per-example losses -log p(true label) of the same model (the default MiniLM body with a probe
head for movie_sentiment, wrapped for the pipeline with the Hugging Face classifier interface) on the same texts.
`score` runs cold (feature cache off), so it pays for the encoder on every round just as the pipeline does. Rounds
are interleaved (score, pipeline at its default batch size, pipeline batched, ...) so that load from other jobs
on a shared machine hits both alike; the median round counts. The ratio against the faster pipeline setting is
printed last, with each setting's share of the machine's measured matmul peak (forward FLOPs per real token:
2 x non-embedding weights + 4 x layers x hidden x tokens), which bounds the ratio any evaluator can reach.

Both run at the same precision (`--precision`): fp32, where the per-example losses must agree to 1e-4, or bf16
autocast (score's default where the CPU has bf16), where they must agree to 0.05 nats (bf16 keeps 8 bits of mantissa,
and the two sides round at different places).

`--bf16-weights` (with `--precision bf16`) adds both sides once more on a copy of the model cast to bf16 and run
without autocast (layer norms and softmax in bf16 too): the lever of casting the weights once, measured for `score`
and for the batched pipeline alike, so that the two still compare at one precision.

    python bench/eval.py [--precision fp32|bf16] [--bf16-weights] [--n 600] [--rounds 3] [--n-unbatched 120]
                         [--max-length 128] [--batch-size 64] [--device cpu] [--json PATH]
"""
import argparse, copy, dataclasses, json, os, statistics, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np
import torch
from transformers import pipeline
from transformers.utils import logging as hf_logging
from transformers.modeling_outputs import SequenceClassifierOutput

from adaptnb.core import MultiTaskModel, autocast, get_device, resolve_dtype, seed_everything
from adaptnb.data import load_task
from adaptnb.heads import fit_probe
from adaptnb.score import example_losses, features
from peak import flops_per_token, matmul_peak


class HeadForSequenceClassification(torch.nn.Module):
    "One task of a MultiTaskModel with the interface a text-classification pipeline expects"
    def __init__(self, mt, task):
        super().__init__()
        self.mt, self.task = mt, task
        self.config = mt.body.config.__class__.from_dict({**mt.body.config.to_dict(),
            "id2label": dict(enumerate(mt.labels[task])), "label2id": {l: i for i, l in enumerate(mt.labels[task])}})
        self.config.problem_type = "single_label_classification"
    @property
    def device(self): return next(self.parameters()).device
    @property
    def dtype(self): return next(self.parameters()).dtype
    def forward(self, input_ids, attention_mask, **kw):
        return SequenceClassifierOutput(logits=self.mt(input_ids, attention_mask, task=self.task))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--n-unbatched", type=int, default=120, help="texts for the (slow) pipeline at batch size 1; its rate is per text")
    ap.add_argument("--device", default=None)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--bf16-weights", action="store_true",
                    help="also score and pipe a bf16 copy of the model (no autocast)")
    ap.add_argument("--json", default=None, help="write the medians, min-max and peak shares here")
    a = ap.parse_args()
    if a.bf16_weights and a.precision != "bf16":
        ap.error("--bf16-weights compares bf16 against bf16: give it with --precision bf16")
    seed_everything(0)
    hf_logging.set_verbosity(hf_logging.CRITICAL)       # the pipeline logs that it does not know the wrapper class
    dev = get_device(a.device)
    mt = MultiTaskModel.from_pretrained("default").to(dev)
    task = load_task("movie_sentiment")
    few = dataclasses.replace(task, train=task.train.select(range(800)), valid=task.valid.select(range(200)))
    fit_probe(mt, few, max_length=a.max_length, device=dev)                 # a probe head on 800 train texts
    ds = task.test.select(range(min(a.n, len(task.test))))                   # the texts to evaluate: test split
    texts, labels = list(ds["text"]), np.asarray(ds["label"])
    n = len(texts)
    print(f"{n} texts of movie_sentiment (test split), max_length {a.max_length}, device {dev}, {a.precision}, "
          f"torch threads {torch.get_num_threads()}")

    dtype = torch.float32 if a.precision == "fp32" else torch.bfloat16
    tol = 1e-4 if a.precision == "fp32" else 0.05
    def make_pipe(model):
        clf = HeadForSequenceClassification(model, "movie_sentiment").eval()
        return pipeline("text-classification", model=clf, tokenizer=mt.tokenizer, device=dev, top_k=None)

    pipe = make_pipe(mt)
    mb = copy.deepcopy(mt).to(torch.bfloat16) if a.bf16_weights else None  # the weights cast once

    def run_score(model=mt, at=dtype):
        X = features(model, ds, batch_size=a.batch_size, max_length=a.max_length, device=dev, dtype=at, cache=False)
        head = model.heads["movie_sentiment"]
        with torch.inference_mode(): logits = head(X.to(dev, head.weight.dtype)).float().cpu()
        return example_losses(logits, labels)

    def run_pipe(bs, m=None, p=pipe, at=dtype):
        with autocast(dev, resolve_dtype(dev, at)):  # the pipeline at score's precision
            out = p(texts[:m], batch_size=bs, truncation=True, max_length=a.max_length)
        names = mt.labels["movie_sentiment"]
        return np.array([-np.log(next(d["score"] for d in o if d["label"] == names[y])) for o, y in zip(out, labels)])

    ours, ref = run_score(), run_pipe(a.batch_size)                       # warm-up, and the same losses?
    diff = float(np.abs(ours - ref).max())
    print(f"per-example losses agree: max |diff| = {diff:.2e} (mean loss {ours.mean():.4f} vs {ref.mean():.4f})")
    assert diff < tol, f"score and the pipeline disagree on the per-example losses (tolerance {tol} at {a.precision})"

    runs = {"score": [], "pipeline bs=1": [], f"pipeline bs={a.batch_size}": []}
    m1 = min(a.n_unbatched, n)
    jobs = {"score": (run_score, n), "pipeline bs=1": (lambda: run_pipe(1, m1), m1),
            f"pipeline bs={a.batch_size}": (lambda: run_pipe(a.batch_size), n)}
    kb = f"pipeline bs={a.batch_size}, bf16 weights"
    if mb is not None:  # torch.float32 as the dtype: no autocast, the bf16 weights as they are
        pipe_mb = make_pipe(mb)
        pipe_b = lambda: run_pipe(a.batch_size, p=pipe_mb, at=torch.float32)
        wb = {"score, bf16 weights": (lambda: run_score(mb, torch.float32), n), kb: (pipe_b, n)}
        jobs |= wb
        runs |= {k: [] for k in wb}
        lb = run_score(mb, torch.float32)
        print(f"bf16 weights: score's losses against the pipeline's max |diff| = "
              f"{np.abs(lb - pipe_b()).max():.2e}, against score under autocast "
              f"{np.abs(lb - ours).max():.2e}")
    for r in range(a.rounds):
        for k, (f, m) in jobs.items():
            t = time.perf_counter(); f(); runs[k].append(m / (time.perf_counter() - t))
        print(f"round {r + 1}: " + "   ".join(f"{k} {v[-1]:.1f}/s" for k, v in runs.items()), flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    seq = float(np.mean([len(x) for x in mt.tokenizer(texts, truncation=True, max_length=a.max_length)["input_ids"]]))
    flops, peak = flops_per_token(mt.body, seq, train=False), matmul_peak(dev, dtype if a.precision == "bf16" else None)
    share = {k: v * seq * flops / peak for k, v in med.items()}
    for k, v in med.items():
        print(f"{k:<18} median {v:8.1f} samples/s (min-max {min(runs[k]):.1f}-{max(runs[k]):.1f}), {share[k]:.0%} of matmul peak")
    print(f"{flops / 1e6:.1f} MFLOP per token, {seq:.1f} real tokens per text, matmul peak {peak / 1e9:.1f} GFLOP/s")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine: numbers are noisy)")
    autocast_pipes = ("pipeline bs=1", f"pipeline bs={a.batch_size}")
    best_pipe = max(med[k] for k in autocast_pipes)
    print(f"(pipeline bs=1 timed on the first {m1} texts)")
    print(f"ratio score / pipeline at its default batch size 1: {med['score'] / med['pipeline bs=1']:.2f}x")
    print(f"ratio score / best pipeline: {med['score'] / best_pipe:.2f}x")
    if mb is not None:
        print(f"bf16 weights: score {med['score, bf16 weights'] / med['score']:.2f}x score under autocast; "
              f"score / pipeline, both on bf16 weights: {med['score, bf16 weights'] / med[kb]:.2f}x")
    best_share = max(share[k] for k in autocast_pipes)
    print(f"3x the best pipeline would need {3 * best_share:.0%} of the matmul peak")
    if a.json:
        rows = {k: {"median": round(med[k], 2), "min": round(min(v), 2), "max": round(max(v), 2),
                    "vs_score": round(med[k] / med["score"], 3), "peak_share": round(share[k], 4)} for k, v in runs.items()}
        out = Path(a.json); out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"device": str(dev), "precision": a.precision, "n": n, "max_length": a.max_length,
                                     "tokens_per_text": seq, "peak_flops": peak, "max_abs_loss_diff": diff,
                                     "settings": rows}, indent=1))


if __name__ == "__main__":
    main()
