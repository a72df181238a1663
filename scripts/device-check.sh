#!/usr/bin/env bash
# The one script to run on a lent GPU machine (GPU.md; prepare with
# scripts/device-prepare.sh and carry what it prints). It
#   1. finds node (or unpacks the carried .device/node.xz), the runtime
#      node_modules, the CPU addon (carried, or built there) and its libraries
#      (.device/lib.tar.xz when the machine has no oneDNN),
#   2. puts python3's site-packages/nvidia/*/lib (cuDNN, cuBLAS, CUDA runtime)
#      on LD_LIBRARY_PATH, probes the CUDA library (carried build, else builds it
#      there with CUDNN_ROOT/CUBLAS_ROOT pointing at those wheels),
#   3. runs the GPU suites with SELFLABEL_TEST_DEVICE=cuda (a skip is a failure),
#   4. times the training step (smallcnn, AlexNet small) against PyTorch eager on
#      the same card, and Sinkhorn N=1,281,167 K=3000 against the bandwidth floor,
# writing every stage's log under $OUT and a short table last.
# Each stage has its own timeout, shortened so the whole run stays under
# DEADLINE_S (default 470 s, under 8 minutes).
#
# usage: bash scripts/device-check.sh [--dry-run]
#   --dry-run: exercise the flow here (no GPU): never builds the CUDA library,
#   runs the GPU suites without SELFLABEL_TEST_DEVICE so they skip, and the
#   benchmarks report "skipped: no CUDA device". The table is printed either way.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DRY=0
for a in "$@"; do
  case "$a" in
    --dry-run) DRY=1 ;;
    *) echo "usage: bash scripts/device-check.sh [--dry-run]" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-/tmp/sln-device-out}
mkdir -p "$OUT"
DEADLINE_S=${DEADLINE_S:-470}
T0=$(date +%s)
TABLE="$OUT/table.txt"
: > "$TABLE"
row() { printf '%-34s %-8s %s\n' "$1" "$2" "$3" >> "$TABLE"; }
elapsed() { echo $(( $(date +%s) - T0 )); }

# stage NAME LIMIT_S CMD...: run with a timeout (cut to what is left of the
# deadline), log to $OUT/NAME.log, show its tail; sets RC and SECS.
stage() {
  local name=$1 limit=$2
  shift 2
  local left=$(( DEADLINE_S - $(elapsed) - 15 ))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 5 ]; then
    echo "== $name: no time left"
    RC=124 SECS=0
    return 124
  fi
  echo "== $name (timeout ${limit}s)"
  local t=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  RC=$?
  SECS=$(( $(date +%s) - t ))
  tail -n 6 "$OUT/$name.log" | sed 's/^/   | /'
  [ "$RC" -eq 124 ] && echo "   ! $name timed out after ${limit}s"
  return "$RC"
}

# ---- 1. node, node_modules, the CPU addon --------------------------------
# unpacked files go outside the checkout, so a dry run here never grows the carry
X=${TMPDIR:-/tmp}/sln-device
mkdir -p "$X"
if ! command -v node > /dev/null 2>&1; then
  if [ -f .device/node.xz ]; then
    mkdir -p "$X/bin"
    xz -dc .device/node.xz > "$X/bin/node" && chmod +x "$X/bin/node"
    export PATH="$X/bin:$PATH"
  else
    row "node" "FAIL" "no node and no .device/node.xz (run scripts/device-prepare.sh here first)"
    cat "$TABLE"; exit 1
  fi
fi
NODE_V=$(node --version)
if [ ! -d node_modules ] && [ -f .device/node_modules.tar.xz ]; then tar -xJf .device/node_modules.tar.xz; fi
if [ -f .device/lib.tar.xz ]; then
  mkdir -p "$X/lib" && tar -C "$X/lib" -xJf .device/lib.tar.xz
fi
# python3's NVIDIA wheels (cuDNN, cuBLAS, runtime): what the CUDA library loads
PY=$(command -v python3 || true)
SITE=""
if [ -n "$PY" ]; then
  SITE=$("$PY" -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null || true)
fi
NV_LIBS=""
if [ -n "$SITE" ]; then
  for d in "$SITE"/nvidia/*/lib; do [ -d "$d" ] && NV_LIBS="$NV_LIBS:$d"; done
fi
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}${NV_LIBS}"
addon_loads() { node -e "require('$1').info()" > /dev/null 2>&1; }
ADDON=""
for cand in build/Release/selflabel_native.node .device/addon/selflabel_native.node; do
  [ -f "$cand" ] || continue
  if addon_loads "$ROOT/$cand"; then ADDON="$ROOT/$cand"; break; fi
  # a bare machine may lack oneDNN / libgomp: retry with the carried copies
  if [ -d "$X/lib" ]; then
    export LD_LIBRARY_PATH="$X/lib:$LD_LIBRARY_PATH"
    if addon_loads "$ROOT/$cand"; then ADDON="$ROOT/$cand"; break; fi
  fi
done
if [ -z "$ADDON" ] && [ "$DRY" -eq 0 ] && [ -x node_modules/.bin/node-gyp ]; then
  stage build-addon 180 npx node-gyp rebuild && addon_loads "$ROOT/build/Release/selflabel_native.node" && ADDON="$ROOT/build/Release/selflabel_native.node"
fi
if [ -z "$ADDON" ]; then
  row "CPU addon" "FAIL" "does not load (see ldd); carry .device from scripts/device-prepare.sh"
  cat "$TABLE"; exit 1
fi
export SELFLABEL_ADDON="$ADDON"
# the test-only addon of the op tests: built beside the addon, else carried
for cand in build/Release/test/selflabel_native_test.node .device/addon/selflabel_native_test.node; do
  if [ -f "$cand" ]; then export SELFLABEL_TEST_ADDON="$ROOT/$cand"; break; fi
done
if [ ! -f .build-ts/lib/cli.js ]; then
  if [ -x node_modules/.bin/tsc ]; then node_modules/.bin/tsc -p tsconfig.dev.json; fi
fi
if [ ! -f .build-ts/lib/cli.js ]; then
  row "compiled TypeScript" "FAIL" "no .build-ts (carry it)"
  cat "$TABLE"; exit 1
fi
row "node / addon" "ok" "node $NODE_V; $(node -e "console.log(require('$ADDON').info().cpu)")"
{
  echo "node $NODE_V"; echo "addon $ADDON"; echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  [ -n "$PY" ] && "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' 2>&1
} > "$OUT/environment.log" 2>&1

# ---- 2. the CUDA library ---------------------------------------------------
cuda_info() { node .build-ts/lib/cli.js info --json > "$OUT/info.json" 2> "$OUT/info.stderr"; node -e "const j=require('$OUT/info.json').cuda; console.log(j.state + '\t' + j.reason)"; }
INFO=$(cuda_info)
STATE=${INFO%%$'\t'*}
if [ "$STATE" != ok ] && [ "$STATE" != no-device ] && [ "$DRY" -eq 0 ] && command -v cmake > /dev/null; then
  # not built, or built elsewhere and not loading here: build it on this machine
  CUDNN_ROOT=${CUDNN_ROOT:-${SITE:+$SITE/nvidia/cudnn}}
  CUBLAS_ROOT=${CUBLAS_ROOT:-${SITE:+$SITE/nvidia/cu13}}
  export CUDNN_ROOT CUBLAS_ROOT
  [ -z "${CUDACXX:-}" ] && [ -x /usr/local/cuda/bin/nvcc ] && export CUDACXX=/usr/local/cuda/bin/nvcc
  build_cuda() {
    # SELFLABEL_ADDON=OFF: only the CUDA library (no Node headers or oneDNN needed there)
    cmake -S . -B build-device -DCMAKE_BUILD_TYPE=Release -DSELFLABEL_CUDA=ON -DSELFLABEL_ADDON=OFF \
      -DCUDNN_ROOT="$CUDNN_ROOT" -DCUBLAS_ROOT="$CUBLAS_ROOT" &&
      cmake --build build-device --target selflabel_cuda -j "$(nproc)"
  }
  if stage build-cuda 240 build_cuda; then
    LIB=$(find build-device -name libselflabel_cuda.so | head -n 1)
    [ -n "$LIB" ] && export SELFLABEL_CUDA_LIB="$ROOT/$LIB"
    row "build CUDA library" "ok" "${SECS}s: ${SELFLABEL_CUDA_LIB:-not found}"
  else
    row "build CUDA library" "FAIL" "rc $RC after ${SECS}s (log: build-cuda.log)"
  fi
  INFO=$(cuda_info)
  STATE=${INFO%%$'\t'*}
fi
REASON=${INFO#*$'\t'}
if [ "$STATE" = ok ]; then row "CUDA probe" "ok" "$REASON"; else row "CUDA probe" "skip" "no CUDA device: $REASON"; fi

# ---- 3. GPU suites -----------------------------------------------------------
if [ "$DRY" -eq 1 ]; then TESTDEV=""; else TESTDEV=cuda; fi
stage test-gpu 150 env SELFLABEL_TEST_DEVICE="$TESTDEV" node --test --test-concurrency=1 .build-ts/test/gpu/
P=$(grep -E '^# pass' "$OUT/test-gpu.log" | awk '{print $3}')
F=$(grep -E '^# fail' "$OUT/test-gpu.log" | awk '{print $3}')
S=$(grep -E '^# skipped' "$OUT/test-gpu.log" | awk '{print $3}')
if [ "$RC" -eq 0 ] && [ "${S:-0}" -gt 0 ]; then ST=skip; elif [ "$RC" -eq 0 ]; then ST=ok; else ST=FAIL; fi
row "test:gpu (SELFLABEL_TEST_DEVICE=$TESTDEV)" "$ST" "pass ${P:-?}, fail ${F:-?}, skipped ${S:-?}; ${SECS}s (rc $RC)"

# ---- 4. benchmarks -----------------------------------------------------------
stage bench-trainstep 120 node .build-ts/bench/run.js gpu_trainstep --steps 10
if grep -q "skipped: no CUDA device" "$OUT/bench-trainstep.log"; then
  row "train step vs PyTorch" "skip" "no CUDA device"
elif [ "$RC" -eq 0 ]; then
  grep -E '^train ' "$OUT/bench-trainstep.log" | while read -r line; do row "" "" "$line"; done
  row "train step vs PyTorch" "ok" "${SECS}s (case, ours img/s, torch img/s, ratio above)"
else
  row "train step vs PyTorch" "FAIL" "rc $RC (log: bench-trainstep.log)"
fi
stage bench-sinkhorn 100 node .build-ts/bench/run.js gpu_sinkhorn --n 1281167 --k 3000 --iters 30
if grep -q "skipped: no CUDA device" "$OUT/bench-sinkhorn.log"; then
  row "Sinkhorn N=1281167 K=3000" "skip" "no CUDA device"
elif [ "$RC" -eq 0 ]; then
  row "Sinkhorn N=1281167 K=3000" "ok" "$(grep -E '^sinkhorn ' "$OUT/bench-sinkhorn.log" | head -n 1)"
else
  row "Sinkhorn N=1281167 K=3000" "FAIL" "rc $RC (log: bench-sinkhorn.log)"
fi

echo
echo "== device check ($( [ "$DRY" -eq 1 ] && echo "dry run, " )$(elapsed)s; logs in $OUT)"
cat "$TABLE"
