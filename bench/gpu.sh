#!/usr/bin/env bash
# The project's GPU check, in one call: the `cuda`-flagged tests and notebook cells, then the fit and score benches
# at bf16 with the fraction of matmul peak (MFU). Run from anywhere, with the project installed (README), on a
# machine with a CUDA GPU; each phase has a time limit so that the whole fits a 15-minute device lease.
#
#     bash bench/gpu.sh            # everything (limits add up to 13.5 minutes; not yet timed on a GPU)
#     bash bench/gpu.sh --quick    # the tests and cells, and one short round of each bench
#
# Writes bench/results/gpu-*.txt (one file per phase) and prints a summary; exit status 1 if a phase failed,
# 2 if there is no CUDA device.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
quick=0
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    *) echo "gpu.sh: unknown option $a: use --quick or nothing" >&2; exit 2 ;;
  esac
done
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu.sh: no CUDA device here (torch.cuda.is_available() is False): run it on a GPU machine" >&2
  exit 2
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ADAPTNB_NO_PROGRESS=1 ADAPTNB_PRECISION=bf16
out=bench/results
mkdir -p "$out"
python -c "import torch; p = torch.cuda.get_device_properties(0); print(f'GPU {p.name}, {p.total_memory / 2**30:.0f} GiB,' \
  f' bf16 {torch.cuda.is_bf16_supported()}, torch {torch.__version__}, CUDA {torch.version.cuda}')" | tee "$out/gpu-device.txt"

failed=()
phase() {  # phase NAME SECONDS COMMAND...: run it under a time limit, keep its output, remember a failure
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "== $name (limit ${limit} s): $*"
  timeout "$limit" "$@" 2>&1 | tee "$out/gpu-$name.txt"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc in $((SECONDS - t0)) s"
  [ "$rc" -eq 0 ] || failed+=("$name (exit $rc)")
}

phase tests 150 python -m pytest -q -n 0 -m cuda tests  # one process: a few tests, one GPU
cells=$(grep -l '#| cuda' nbs/*.ipynb)
for nb in $cells; do
  phase "cells-$(basename "$nb" .ipynb)" 150 nbdev-test --flags cuda "$nb"
done
if [ "$quick" -eq 1 ]; then
  phase fit 240 python bench/train.py --batch-size 256 --steps 8 --rounds 1 --n 4096
  phase score 180 python bench/eval.py --device cuda --rounds 1 --n 2000
else
  phase fit 240 python bench/train.py --batch-size 256 --steps 20 --rounds 4 --n 8192
  phase score 120 python bench/eval.py --device cuda --rounds 3 --n 6000
fi

echo
echo "summary (full outputs in $out/gpu-*.txt):"
grep -hiE "passed|failed|samples/s|texts/s|peak|MFU|ratio" "$out"/gpu-tests.txt "$out"/gpu-fit.txt "$out"/gpu-score.txt \
  2>/dev/null | tail -n 30
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "every phase passed"
