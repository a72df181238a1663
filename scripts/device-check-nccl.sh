#!/usr/bin/env bash
# The NCCL stage of a GPU device check (issue 17; run after scripts/device-check.sh
# in the same device call, which makes node, the addon and the CUDA library
# usable there):
#   1. build libselflabel_nccl.so there (scripts/build-nccl.sh: the CUDA toolkit,
#      NCCL from python3's site-packages/nvidia/nccl or the system) and run its
#      probe (native/mpi/nccl_check.cpp: a 1-rank communicator on device 0, an
#      all-reduce of 2^20 float32 and float64 values checked bit for bit);
#   2. with >= 2 GPUs, OpenMPI and node, over R = GPU-count ranks (one GPU each):
#      - test/helpers/dist_nccl_worker.js: device all-reduces (sum/max/min exact),
#        the row-sharded CUDA Sinkhorn over NCCL against one GPU and the CPU, and
#        a training step whose gradients are summed over NCCL against one GPU;
#      - `train --distributed --device cuda` end to end (a few steps and label
#        passes; the ranks' parameters are compared at every checkpoint);
#      - the MPI sharded Sinkhorn (test/helpers/dist_sinkhorn_worker.js).
# Logs under $OUT; a table last ($OUT/nccl-table.txt).
# usage: bash scripts/device-check-nccl.sh
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-/tmp/sln-device-out}
mkdir -p "$OUT"
TABLE="$OUT/nccl-table.txt"
: > "$TABLE"
row() { printf '%-28s %-6s %s\n' "$1" "$2" "$3" | tee -a "$TABLE"; }
nvidia-smi -L > "$OUT/gpus.txt" 2>&1 || true
ngpu=$(grep -c '^GPU ' "$OUT/gpus.txt" || true)
row "GPUs" "info" "${ngpu:-0}: $(head -1 "$OUT/gpus.txt")"
if timeout 300 sh scripts/build-nccl.sh > "$OUT/build-nccl.log" 2>&1; then
  row "build libselflabel_nccl.so" "ok" "$(tail -1 "$OUT/build-nccl.log")"
else
  row "build libselflabel_nccl.so" "FAIL" "$(tail -1 "$OUT/build-nccl.log")"
  cat "$TABLE"; exit 1
fi
if timeout 120 build-mpi/nccl_check build-mpi/libselflabel_nccl.so > "$OUT/nccl_check.log" 2>&1; then
  row "nccl_check (1 rank)" "ok" "$(head -1 "$OUT/nccl_check.log")"
else
  row "nccl_check (1 rank)" "FAIL" "$(grep FAIL "$OUT/nccl_check.log" | head -1)"
fi

# ---- several GPUs --------------------------------------------------------------
if [ "${ngpu:-0}" -lt 2 ] || ! command -v mpirun > /dev/null || ! command -v node > /dev/null || [ ! -f .build-ts/test/helpers/dist_nccl_worker.js ]; then
  row "multi-GPU stage" "skip" "needs >= 2 GPUs, mpirun, node and .build-ts (GPUs: ${ngpu:-0}); --distributed --device cuda did not run"
  cat "$TABLE"; exit 0
fi
# the NVIDIA wheels' libraries (cuDNN, cuBLAS) and the CUDA library device-check.sh built or found
SITE=$(python3 -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null || true)
if [ -n "$SITE" ]; then for d in "$SITE"/nvidia/*/lib; do [ -d "$d" ] && LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}:$d"; done; fi
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"
if [ -z "${SELFLABEL_CUDA_LIB:-}" ]; then
  LIB=$(find build-device build-cmake -name libselflabel_cuda.so 2> /dev/null | head -n 1)
  [ -n "$LIB" ] && export SELFLABEL_CUDA_LIB="$ROOT/$LIB"
fi
if ! timeout 300 sh scripts/build-mpi.sh > "$OUT/build-mpi.log" 2>&1; then
  row "build libselflabel_mpi.so" "FAIL" "$(tail -1 "$OUT/build-mpi.log")"
  cat "$TABLE"; exit 1
fi
export SELFLABEL_MPI_LIB=$ROOT/build-mpi/libselflabel_mpi.so SELFLABEL_NCCL_LIB=$ROOT/build-mpi/libselflabel_nccl.so
MPIRUN=(mpirun --allow-run-as-root --oversubscribe -x SELFLABEL_MPI_LIB -x SELFLABEL_NCCL_LIB -x LD_LIBRARY_PATH -np "$ngpu")
[ -n "${SELFLABEL_CUDA_LIB:-}" ] && MPIRUN+=(-x SELFLABEL_CUDA_LIB)
[ -n "${SELFLABEL_ADDON:-}" ] && MPIRUN+=(-x SELFLABEL_ADDON)
node .build-ts/lib/cli.js info > "$OUT/nccl-info.log" 2>&1
row "info: NCCL" "info" "$(grep '^NCCL' "$OUT/nccl-info.log")"

if timeout 300 "${MPIRUN[@]}" node .build-ts/test/helpers/dist_nccl_worker.js > "$OUT/nccl-worker.log" 2>&1; then
  # pass: exact all-reduces, >= 99.9% of labels as one GPU's, the NCCL step within 1e-5 of one GPU's
  VERDICT=$(node -e '
    const ls = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter((l) => l.startsWith("SLN_DIST_NCCL ")).map((l) => JSON.parse(l.slice(14)));
    const bad = ls.filter((r) => !(r.allreduce.sum && r.allreduce.max && r.allreduce.min && r.sinkhorn.agreeOneGpu >= 0.999 && r.trainStep.maxRelDiff < 1e-5));
    const r0 = ls.find((r) => r.rank === 0) || {};
    console.log((ls.length && !bad.length ? "ok" : "FAIL") + "\t" + ls.length + " ranks; rank 0: " + JSON.stringify({ allreduce: r0.allreduce, sinkhorn: r0.sinkhorn, trainStep: r0.trainStep }));
  ' "$OUT/nccl-worker.log")
  row "NCCL collectives + Sinkhorn" "${VERDICT%%$'\t'*}" "${VERDICT#*$'\t'}"
else
  row "NCCL collectives + Sinkhorn" "FAIL" "rc $? (log: nccl-worker.log): $(grep -m1 -i error "$OUT/nccl-worker.log")"
fi

EXP="$OUT/dist-train-cuda"
rm -rf "$EXP"
if timeout 300 "${MPIRUN[@]}" node .build-ts/lib/cli.js train --distributed --device cuda --synthetic-count 2000 --batch-size 200 \
     --epochs 2 --nopts 2 --eval-test false --exp "$EXP" > "$OUT/dist-train-cuda.log" 2>&1 && [ -f "$EXP/model.safetensors" ]; then
  row "train --distributed cuda" "ok" "$ngpu ranks: $(grep -E '^done in|label pass 2' "$OUT/dist-train-cuda.log" | tr '\n' ' ')"
else
  row "train --distributed cuda" "FAIL" "log: dist-train-cuda.log: $(grep -m1 'selflabel-native:' "$OUT/dist-train-cuda.log")"
fi

if [ -f .build-ts/test/helpers/dist_sinkhorn_worker.js ] &&
   timeout 300 "${MPIRUN[@]}" node .build-ts/test/helpers/dist_sinkhorn_worker.js > "$OUT/mpi-sinkhorn.log" 2>&1; then
  row "MPI sharded sinkhorn" "ok" "$ngpu ranks"
else
  row "MPI sharded sinkhorn" "FAIL" "see mpi-sinkhorn.log"
fi
cat "$TABLE"
