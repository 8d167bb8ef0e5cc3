"""Decision quality, measured: for each embedded task and for a case built to favour retraining (movie reviews
written in Runic letters, which the pretrained tokenizer maps to [UNK]), assess and decide, then run BOTH branches
(fine-tune and retrain) at the same small budget and check whether the decision picked the one with the lower test
loss. Writes bench/decide_agreement.json; prints the table and, last, the agreement ratio.

    python bench/decide_agreement.py [--steps 100] [--cases news_topic,...]
"""
import argparse, copy, dataclasses, json, sys, time
from pathlib import Path
import numpy as np
import datasets; datasets.disable_progress_bars()
from adaptnb.core import MultiTaskModel, seed_everything
from adaptnb.data import load_task
from adaptnb.decide import assess, decide, _method
from adaptnb.flow import Partition, Requirement, TaskRef, branch_model, branch_train_config
from adaptnb.heads import fit_probe
from adaptnb.train import fit

RUNIC = str.maketrans({c: chr(0x16A0 + i) for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")})

def runic(task):
    "The task with every Latin letter replaced by a Runic one: same words, same labels, a script the tokenizer lacks"
    tr = lambda ds: ds.map(lambda b: {"text": [s.lower().translate(RUNIC) for s in b["text"]]}, batched=True)
    return dataclasses.replace(task, name=f"{task.name}_runic", train=tr(task.train), valid=tr(task.valid), test=tr(task.test), language="runic")

CASES = {  # name -> (embedded task, max_per_class, transform)
    "news_topic": ("news_topic", 100, None),
    "movie_sentiment": ("movie_sentiment", 300, None),
    "zh_review_sentiment": ("zh_review_sentiment", 300, None),
    "utterance_language": ("utterance_language", 25, None),
    "movie_sentiment_runic": ("movie_sentiment", 300, runic),
}

def one(name, steps, batch, max_length, seed=0):
    ref, mpc, tf = CASES[name]
    task = load_task(ref, seed=seed, max_per_class=mpc)
    if tf: task = tf(task)
    req = Requirement(retain=[], new=[TaskRef(task.name)], name=f"bench-{name}", budget={"max_steps": steps},
                      seed=seed, max_per_class=mpc, max_length=max_length, batch_size=batch)
    part = Partition(req, [], [task])
    base = MultiTaskModel.from_pretrained("default")
    t0 = time.perf_counter(); A = assess(part, sample=400, pretrained=base, progress=False); D = decide(A)
    fit_probe(base, task, max_length=max_length, seed=seed)
    res = {}
    for action in ("finetune", "retrain"):
        Dx = D if D.action == action else dataclasses.replace(
            D, action=action, method=_method(A, D.thresholds)[0] if action == "finetune" else "retrain",
            tokenizer="task" if action == "retrain" and A.tasks[task.name].unk_rate > D.thresholds.max_unk_rate else "base",
            train_tasks=[task.name])
        model, train = branch_model(Dx, part, base)
        r = fit(model, train, branch_train_config(Dx, req, eval_every=max(1, steps // 3)), callbacks=())
        res[action] = dict(method=Dx.method, tokenizer=Dx.tokenizer, **r.test[task.name], seconds=r.train_seconds)
    better = "finetune" if res["finetune"]["loss"] <= res["retrain"]["loss"] else "retrain"
    ta = A.tasks[task.name]
    return dict(case=name, n_train=len(task.train), classes=task.num_labels, decision=D.action, method=D.method, votes=D.votes,
                unk_rate=ta.unk_rate, relative_gap=ta.relative_gap, probe_loss=ta.probe_loss, probe_loss_scratch=ta.probe_loss_scratch,
                logme=ta.logme, logme_scratch=ta.logme_scratch, finetune=res["finetune"], retrain=res["retrain"], better=better,
                agree=better == D.action, reasons=D.reasons, seconds=round(time.perf_counter() - t0, 1))

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=40); p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=64); p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    a = p.parse_args()
    out = Path(a.out); rows = json.loads(out.read_text()) if out.exists() else {}
    for c in a.cases.split(","):
        rows[c] = one(c, a.steps, a.batch_size, a.max_length)
        out.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        r = rows[c]; print(f"{c}: decision {r['decision']}, finetune {r['finetune']['loss']:.3f}, retrain {r['retrain']['loss']:.3f}, agree {r['agree']}", flush=True)
    print(f"\n{'case':<24}{'gap':>7}{'[UNK]':>7}{'decision':>10}{'FT loss':>9}{'RT loss':>9}{'FT acc':>8}{'RT acc':>8}  agree")
    for r in rows.values():
        print(f"{r['case']:<24}{r['relative_gap']:>7.1%}{r['unk_rate']:>7.1%}{r['decision']:>10}{r['finetune']['loss']:>9.3f}{r['retrain']['loss']:>9.3f}"
              f"{r['finetune']['accuracy']:>8.3f}{r['retrain']['accuracy']:>8.3f}  {'yes' if r['agree'] else 'NO'}")
    n = sum(r["agree"] for r in rows.values())
    print(f"agreement {n}/{len(rows)} = {n / len(rows):.2f}")

if __name__ == "__main__": main()
