#!/usr/bin/env bash
# The NCCL stage of a GPU device check (issue 17): build libselflabel_nccl.so
# there (scripts/build-nccl.sh: the CUDA toolkit, NCCL from python3's
# site-packages/nvidia/nccl or the system) and run its probe
# (native/mpi/nccl_check.cpp: a 1-rank communicator on device 0, an all-reduce
# of 2^20 float32 and float64 values checked bit for bit). On a machine with
# several GPUs and OpenMPI it then runs the MPI collectives over R = GPU-count
# ranks (test/helpers/dist_sinkhorn_worker.js, when node is there).
# Logs under $OUT; a table last. usage: bash scripts/device-check-nccl.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/sln-device-out}
mkdir -p "$OUT"
TABLE="$OUT/nccl-table.txt"
: > "$TABLE"
row() { printf '%-28s %-6s %s\n' "$1" "$2" "$3" | tee -a "$TABLE"; }
nvidia-smi -L > "$OUT/gpus.txt" 2>&1 || true
ngpu=$(grep -c '^GPU ' "$OUT/gpus.txt" || true)
row "GPUs" "info" "$ngpu: $(head -1 "$OUT/gpus.txt")"
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
if [ "${ngpu:-0}" -ge 2 ] && command -v mpirun >/dev/null && command -v node >/dev/null && [ -f .build-ts/test/helpers/dist_sinkhorn_worker.js ]; then
  if timeout 300 sh scripts/build-mpi.sh > "$OUT/build-mpi.log" 2>&1 &&
     SELFLABEL_MPI_LIB=$PWD/build-mpi/libselflabel_mpi.so timeout 300 mpirun --allow-run-as-root --oversubscribe -x SELFLABEL_MPI_LIB \
       -np "$ngpu" node .build-ts/test/helpers/dist_sinkhorn_worker.js > "$OUT/mpi-sinkhorn.log" 2>&1; then
    row "MPI sharded sinkhorn" "ok" "$ngpu ranks"
  else
    row "MPI sharded sinkhorn" "FAIL" "see mpi-sinkhorn.log"
  fi
else
  row "multi-GPU stage" "skip" "needs >= 2 GPUs, mpirun and node (NCCL with R > 1 ranks is not wired into training)"
fi
cat "$TABLE"
