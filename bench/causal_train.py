"""Throughput of causal-LM LoRA through `adaptnb.train.fit` against Hugging Face `Trainer` + PEFT, interleaved.

Same model (SmolLM2-135M-Instruct, offline), same data (movie reviews phrased as prompts, the answer " Positive" or
" Negative"), same LoRA (r=8, alpha=16, no dropout, q_proj and v_proj), same lengths (prompt + answer cut to
--max-length), same batch, learning rate and precision (bf16 autocast where the CPU has it, as fit's default).
Trainer at its best setting: dynamic padding (DataCollatorForSeq2Seq, labels padded with -100) and
train_sampling_strategy="group_by_length". Throughput is timed between the end of the first optimiser step and the end
of the last one, so loading, the first step and evaluation are excluded for both. Rounds alternate fit, Trainer;
reported: the median samples/s with min-max, tokens/s, the ratio of medians, and the share of the measured matmul
peak that each achieves. The FLOPs an example needs: 4 x N_body per token (the forward pass, and the backward pass
to the activations: the frozen weights get no gradient and the LoRA weights' are negligible), 6 x layers x hidden x
tokens^2 for causal attention forward and backward, and 6 x vocabulary x hidden per answer token for the output
layer (the only positions the loss reads; Trainer computes the output layer on every position, which is work fit
does not do, so Trainer's share of the peak is understated by that much).

    python bench/causal_train.py [--steps 12] [--rounds 4] [--n 512] [--batch-size 8] [--max-length 128] [--json F]
"""
import argparse, copy, json, os, statistics, tempfile, time
os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("ADAPTNB_NO_PROGRESS", "1")
import numpy as np
import torch
from adaptnb.core import autocast_dtype, get_device
from adaptnb.llm import CausalLM, causal_lora_config, encode_prompts, prompt_task
from peak import matmul_peak
from adaptnb.train import Callback, fit

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=12); ap.add_argument("--rounds", type=int, default=4)
ap.add_argument("--n", type=int, default=512); ap.add_argument("--batch-size", type=int, default=8)
ap.add_argument("--max-length", type=int, default=128); ap.add_argument("--json", default=None)
a = ap.parse_args()
BS, ML, STEPS = a.batch_size, a.max_length, a.steps
dev = get_device(); dtype = autocast_dtype(dev)
prec = "bf16" if dtype == torch.bfloat16 else "fp32"

base = CausalLM.from_pretrained("smollm2")
tok = base.tokenizer
import dataclasses
mp = prompt_task("movie_sentiment", max_chars=400)
task = dataclasses.replace(mp, train=mp.train.select(range(min(a.n, len(mp.train)))), valid=mp.valid.select(range(16)),
                           test=mp.test.select(range(16)))
items = encode_prompts(tok, task.train["prompt"], task.train["answer"], ML)
lens = np.array([len(x) for x, _ in items]); answer = np.array([len(x) - n for x, n in items])
print(f"device {dev}, precision {prec}, {len(items)} prompts, tokens per example: median {np.median(lens):.0f}, "
      f"mean {lens.mean():.1f}, p90 {np.percentile(lens, 90):.0f}, max {lens.max()}; answer tokens {answer.mean():.2f}; "
      f"batch {BS}, max_length {ML}, {STEPS} steps x {a.rounds} rounds", flush=True)
LORA = dict(lora_r=8, lora_alpha=16, lora_dropout=0.0, lora_targets=["q_proj", "v_proj"])


class Clock(Callback):
    def __init__(self): self.t = {}
    def after_step(self, run, step, loss): self.t[step] = time.perf_counter()


def run_fit():
    m, c = copy.deepcopy(base), Clock()
    fit(m, task, causal_lora_config(max_steps=STEPS, batch_size=BS, max_length=ML, eval_every=10**6, eval_max=8,
                                    keep_best=False, **LORA), callbacks=[c])
    return (STEPS - 1) * BS / (c.t[STEPS] - c.t[1])


def run_trainer():
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments
    from accelerate.state import AcceleratorState
    model = get_peft_model(copy.deepcopy(base.body), LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, bias="none",
                                                                target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    ds = Dataset.from_dict({"input_ids": [x for x, _ in items], "attention_mask": [[1] * len(x) for x, _ in items],
                            "labels": [[-100] * n + x[n:] for x, n in items]})
    AcceleratorState._reset_state()
    t = {}
    class CB(TrainerCallback):
        def on_step_end(self, args, state, control, **kw): t[state.global_step] = time.perf_counter()
    args = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=BS, max_steps=STEPS,
                             learning_rate=1e-3, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                             report_to=[], save_strategy="no", logging_strategy="no", disable_tqdm=True,
                             use_cpu=dev.type == "cpu", dataloader_num_workers=0, seed=0, bf16=(prec == "bf16"),
                             train_sampling_strategy="group_by_length", remove_unused_columns=False)
    Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorForSeq2Seq(tok, label_pad_token_id=-100),
            callbacks=[CB()]).train()
    return (STEPS - 1) * BS / (t[STEPS] - t[1])


res = {"fit": [], "trainer_peft": []}
for r in range(a.rounds):
    res["fit"].append(run_fit()); res["trainer_peft"].append(run_trainer())
    print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in res.items()), "samples/s", flush=True)
med = {k: statistics.median(v) for k, v in res.items()}

cfg = base.body.config
N = sum(p.numel() for n, p in base.body.named_parameters() if "embed_tokens" not in n and "lm_head" not in n)
L, H, V = cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size
T, A = float(lens.mean()), float(answer.mean())
flops_example = 4 * N * T + 6 * L * H * T**2 + 6 * V * H * A  # the work the loss needs (see the docstring)
peak = matmul_peak(dev, dtype)
out = {"device": str(dev), "precision": prec, "batch_size": BS, "max_length": ML, "steps": STEPS, "rounds": a.rounds,
       "tokens_per_example": T, "answer_tokens": A, "samples_per_s": res, "median": med,
       "ratio": med["fit"] / med["trainer_peft"], "matmul_peak_gflops": peak / 1e9,
       "mfu": {k: v * flops_example / peak for k, v in med.items()}}
for k, v in res.items():
    print(f"{k}: median {med[k]:.2f} samples/s (min {min(v):.2f}, max {max(v):.2f}), {med[k] * T:.0f} tokens/s, "
          f"{out['mfu'][k]:.1%} of the {prec} matmul peak ({peak / 1e9:.0f} GFLOP/s)")
print(f"ratio fit / Trainer+PEFT (medians): {out['ratio']:.2f}x")
if a.json:
    json.dump(out, open(a.json, "w"), indent=1)
