#!/usr/bin/env bash
# The project's GPU check, in one call: the `cuda`-flagged tests and notebook cells, then the fit benches (MiniLM at
# batch 256, SmolLM2-135M LoRA) and the score bench at bf16, each with its fraction of the matmul peak (MFU). Run from
# anywhere, with the project installed as the README says but with the machine's own CUDA build of torch in place of
# torch==2.13.0, on a machine with a CUDA GPU. Each phase has a time limit, and the limits add up to 570 s, so that
# the whole runs as one command of at most 10 minutes (a device lease is 15, its start included).
#
#     bash bench/gpu.sh            # everything (not yet timed on a GPU: no GPU was lent so far)
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

phase tests 90 python -m pytest -q -n 0 -m cuda tests  # one process: a few tests, one GPU
cells=$(grep -l '#| cuda' nbs/*.ipynb)  # 09d_deploy_predict and 10b_widgets_train
for nb in $cells; do
  phase "cells-$(basename "$nb" .ipynb)" 90 nbdev-test --flags cuda "$nb"
done
if [ "$quick" -eq 1 ]; then
  phase fit 120 python bench/train.py --batch-size 256 --steps 8 --rounds 1 --n 4096
  phase causal 120 python bench/causal_train.py --batch-size 32 --steps 6 --rounds 1 --n 512
  phase score 60 python bench/eval.py --device cuda --rounds 1 --n 2000
else
  phase fit 120 python bench/train.py --batch-size 256 --steps 20 --rounds 3 --n 8192
  phase causal 120 python bench/causal_train.py --batch-size 32 --steps 12 --rounds 2 --n 1024
  phase score 60 python bench/eval.py --device cuda --rounds 3 --n 6000
fi

echo
echo "summary (full outputs in $out/gpu-*.txt):"
grep -hiE "passed|failed|samples/s|texts/s|peak|MFU|ratio" "$out"/gpu-tests.txt "$out"/gpu-fit.txt "$out"/gpu-causal.txt \
  "$out"/gpu-score.txt 2>/dev/null | tail -n 40
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "every phase passed"
