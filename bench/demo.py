"""`adaptnb demo` measured: its wall time, each stage's time beside the plan's estimate, and its verdict, at fp32 and
(where the CPU computes bf16 natively) at bf16, each in a fresh process, one after another (run it alone).

The demo's spec is `adaptnb.flow.DEMO_SPEC` unless --budget-minutes or --max-steps replaces its budget (to try a
budget before changing the spec). Results go to --json (default bench/results/demo.json), one entry per precision,
written as each finishes.

    python bench/demo.py [--precisions fp32,bf16] [--budget-minutes M | --max-steps N] [--json F]
"""
import argparse, json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ONE = r"""
import json, sys, time
from adaptnb.core import resolve_dtype
from adaptnb.flow import DEMO_SPEC, run
spec = dict(DEMO_SPEC, **json.loads(sys.argv[2]))
t0 = time.perf_counter()
res = run(spec, sys.argv[1], progress=True)
v = res.verdict
print("RESULT " + json.dumps({
    "wall_seconds": round(time.perf_counter() - t0, 1), "dtype": str(resolve_dtype("cpu", None)),
    "budget": spec["budget"], "steps": res.plan.steps, "stages": res.seconds, "estimate": res.estimated_seconds,
    "winner": v.winner, "S_before": v.S_before, "S_after": v.S_after, "S_diff": v.S_diff, "S_diff_se": v.S_diff_se,
    "n_test": v.n_test, "real_win": (not v.base_stays) and v.S_diff < -2 * v.S_diff_se,
    "tasks": v.tasks, "verdict": v.text, "plan": res.plan.how,
    "report": open(sys.argv[1] + "/report.md").read()}))
"""


def host() -> dict:
    "What this machine is: CPU model, cores, the bf16 flags"
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((l.split(":", 1)[1].strip() for l in flags.splitlines() if l.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16 (bf16 only where native)")
    ap.add_argument("--budget-minutes", type=float, default=None, help="replace the demo's budget by this many minutes")
    ap.add_argument("--max-steps", type=int, default=None, help="replace the demo's budget by this many steps")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "demo.json"))
    a = ap.parse_args()
    precs = [p.strip() for p in a.precisions.split(",") if p.strip()]
    bad = [p for p in precs if p not in ("fp32", "bf16")]
    if bad or (a.budget_minutes is not None and a.max_steps is not None):
        ap.error(f"--precisions takes fp32 and/or bf16 (got {bad}); give --budget-minutes or --max-steps, not both")
    over = {"budget": {"minutes": a.budget_minutes}} if a.budget_minutes else {}
    over |= {"budget": {"max_steps": a.max_steps}} if a.max_steps else {}
    h = host()
    out = {"host": h, "runs": {}}
    for p in precs:
        if p == "bf16" and not (h["avx512_bf16"] or h["amx_bf16"]):
            out["runs"][p] = {"skipped": "this CPU has no native bf16 (AVX512_BF16 or AMX): auto chooses fp32 here"}
            continue
        env = dict(os.environ, ADAPTNB_PRECISION=p, HF_HUB_OFFLINE="1", ADAPTNB_NO_PROGRESS="1")
        with tempfile.TemporaryDirectory() as d:
            r = subprocess.run([sys.executable, "-c", ONE, str(Path(d) / "demo"), json.dumps(over)], env=env,
                               capture_output=True, text=True)
        line = next((l for l in r.stdout.splitlines() if l.startswith("RESULT ")), None)
        if r.returncode or line is None:
            print(r.stdout[-3000:], r.stderr[-3000:], file=sys.stderr)
            return 1
        out["runs"][p] = json.loads(line[7:])
        print(f"{p}: {out['runs'][p]['wall_seconds']:.0f} s, {out['runs'][p]['verdict']}", flush=True)
        Path(a.json).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    Path(a.json).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
