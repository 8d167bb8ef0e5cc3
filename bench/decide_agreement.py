"""Decision quality at real budgets. For each requirement (each embedded task as the new task, the Runic-script
variant built to favour retraining, and one retain + new pair), run the whole flow with every candidate, retraining
included, at the default budget, and check the assessment's prediction (fine-tune or retrain) against the measured
winner between lp-ft and retrain (test S, with the paired se). Then the crossover: on zh_review_sentiment, LP-FT and
retraining with its task tokenizer are trained for up to --crossover-steps, evaluated on valid every
--crossover-every steps, to find the budget at which retraining overtakes fine-tuning, if it does.

    python bench/decide_agreement.py [--cases news_topic,...] [--crossover-steps 2000] [--no-crossover]

Writes bench/decide_agreement.json (rows are written as each finishes, so a kill loses no finished case) and prints
the tables.
"""
import argparse, copy, dataclasses, json, tempfile, time
from pathlib import Path
import datasets

datasets.disable_progress_bars()
from adaptnb.core import MultiTaskModel, seed_everything
from adaptnb.data import load_task
from adaptnb.decide import task_tokenizer, scratch_model
from adaptnb.flow import run
from adaptnb.spec import Partition, Requirement, TaskRef
from adaptnb.heads import init_heads
from adaptnb.score import paired_diff, predictions
from adaptnb.train import TrainConfig, fit

RUNIC = str.maketrans({c: chr(0x16A0 + i) for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")})


def runic(task):
    "The task with every Latin letter replaced by a Runic one: same words, same labels, a script the tokenizer lacks"
    tr = lambda ds: ds.map(lambda b: {"text": [s.lower().translate(RUNIC) for s in b["text"]]}, batched=True)
    return dataclasses.replace(task, name=f"{task.name}_runic", train=tr(task.train), valid=tr(task.valid),
                               test=tr(task.test), language="runic")


CASES = {  # name -> ([(embedded task, transform)] retained, [(embedded task, transform)] new)
    "news_topic": ([], [("news_topic", None)]),
    "movie_sentiment": ([], [("movie_sentiment", None)]),
    "zh_review_sentiment": ([], [("zh_review_sentiment", None)]),
    "utterance_language": ([], [("utterance_language", None)]),
    "movie_sentiment_runic": ([], [("movie_sentiment", runic)]),
    "keep_news_add_zh": ([("news_topic", None)], [("zh_review_sentiment", None)]),
}


def _load(ref, tf, mpc, seed):
    t = load_task(ref, seed=seed, max_per_class=mpc)
    return tf(t) if tf else t


def one(name, mpc, max_length, batch, seed=0):
    "One requirement through the whole flow with every candidate; the prediction against the measured winner"
    retain, new = ([_load(r, tf, mpc, seed) for r, tf in x] for x in CASES[name])
    req = Requirement(retain=[TaskRef(t.name) for t in retain], new=[TaskRef(t.name) for t in new], name=f"bench-{name}",
                      seed=seed, max_per_class=mpc, max_length=max_length, batch_size=batch, candidates=["retrain"])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        res = run(Partition(req, retain, new), Path(d) / "run", sample=400, progress=False)
    ft, rt = res.candidate("lp-ft"), res.candidate("retrain")
    d_s, se = rt.test.S - ft.test.S, (rt.vs_base_test.se ** 2 + ft.vs_base_test.se ** 2) ** 0.5  # conservative
    measured = "retrain" if d_s < 0 else "finetune"
    return dict(case=name, n_test={t: s.n for t, s in res.score_final.tasks.items()}, decision=res.decision.action,
                method=res.decision.method, votes=res.decision.votes, steps=res.plan.steps,
                candidates={c.name: dict(valid_S=c.valid.S, test_S=c.test.S, test_diff=c.vs_base_test.diff,
                                         test_diff_se=c.vs_base_test.se, seconds=c.seconds) for c in res.candidates},
                retrain_minus_finetune=d_s, retrain_minus_finetune_se_bound=se, measured=measured,
                decided_by_noise=abs(d_s) < 2 * se, agree=measured == res.decision.action, winner=res.verdict.winner,
                verdict=res.verdict.text, seconds=round(time.perf_counter() - t0, 1))


def crossover(steps, every, mpc, max_length, batch, seed=0):
    "LP-FT against retraining with the task tokenizer on zh_review_sentiment: valid S along the steps"
    task = load_task("zh_review_sentiment", seed=seed, max_per_class=mpc)
    base = MultiTaskModel.from_pretrained("default")
    init_heads(base, [task], max_length=max_length, seed=seed)
    out = {}
    for name in ("lp-ft", "retrain"):
        seed_everything(seed)
        m = copy.deepcopy(base) if name == "lp-ft" else scratch_model("default", task_tokenizer([task], base.tokenizer), seed)
        cfg = TrainConfig(method="full" if name == "lp-ft" else "retrain", max_steps=steps, eval_every=every,
                          batch_size=batch, max_length=max_length, seed=seed, keep_best=False, schedule="constant",
                          warmup=0.0)
        t0 = time.perf_counter()
        r = fit(m, [task], cfg)
        out[name] = dict(curve=[(h["step"], h["S"]) for h in r.history], test=r.test[task.name],
                         seconds=round(time.perf_counter() - t0, 1))
    ft, rt = dict(out["lp-ft"]["curve"]), dict(out["retrain"]["curve"])
    over = [s for s in sorted(rt) if s > 0 and rt[s] < ft[s]]
    return dict(task=task.name, n_train=len(task.train), steps=steps, every=every, runs=out,
                overtakes_at=over[0] if over else None)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--max-per-class", type=int, default=1000, help="examples per class over all splits")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--crossover-steps", type=int, default=2000)
    p.add_argument("--crossover-every", type=int, default=250)
    p.add_argument("--no-crossover", action="store_true")
    p.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    a = p.parse_args()
    out = Path(a.out)
    rows = json.loads(out.read_text()) if out.exists() else {}
    rows = {k: v for k, v in rows.items() if "measured" in v or k == "crossover"}  # drop the old format's rows
    for c in [c for c in a.cases.split(",") if c]:
        rows[c] = one(c, a.max_per_class, a.max_length, a.batch_size)
        out.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        r = rows[c]
        print(f"{c}: decision {r['decision']}, measured {r['measured']}, agree {r['agree']} ({r['seconds']} s)", flush=True)
    if not a.no_crossover:
        rows["crossover"] = crossover(a.crossover_steps, a.crossover_every, a.max_per_class, a.max_length, a.batch_size)
        out.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
    cases = [r for k, r in rows.items() if k != "crossover"]
    print(f"\n{'case':<24}{'decision':>10}{'lp-ft S':>9}{'retrain S':>11}{'RT − FT':>18}{'measured':>10}  agree  winner")
    for r in cases:
        c = r["candidates"]
        print(f"{r['case']:<24}{r['decision']:>10}{c['lp-ft']['test_S']:>9.3f}{c['retrain']['test_S']:>11.3f}"
              f"{r['retrain_minus_finetune']:>+10.3f} ± {r['retrain_minus_finetune_se_bound']:.3f}{r['measured']:>10}"
              f"  {'yes' if r['agree'] else 'NO':<5}  {r['winner']}")
    n = sum(r["agree"] for r in cases)
    print(f"agreement {n}/{len(cases)}")
    if "crossover" in rows:
        x = rows["crossover"]
        print(f"\ncrossover on {x['task']} ({x['n_train']} train): valid S every {x['every']} steps")
        for (s, f), (_, r) in zip(x["runs"]["lp-ft"]["curve"], x["runs"]["retrain"]["curve"]):
            print(f"  step {s:>5}: lp-ft {f:.3f}  retrain {r:.3f}")
        print(f"retraining overtakes fine-tuning at step {x['overtakes_at']}" if x["overtakes_at"]
              else f"retraining does not overtake fine-tuning within {x['steps']} steps")


if __name__ == "__main__":
    main()
