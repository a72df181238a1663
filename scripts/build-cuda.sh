#!/usr/bin/env sh
# npm run build:cuda: the cmake-js build of the addon plus libselflabel_cuda.so
# (SELFLABEL_CUDA=ON: fails naming what is missing). When CUDNN_ROOT is not
# set and NVIDIA's wheels are on disk, scripts/cuda-deps.sh unpacks them first
# and their folders are used; otherwise CMake searches the toolkit, the system
# and pip's site-packages. Extra arguments go to cmake-js (e.g.
# --CDCMAKE_CUDA_ARCHITECTURES=80-real to compile for one GPU while iterating).
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [ -z "${CUDNN_ROOT:-}" ]; then
  if deps="$(sh scripts/cuda-deps.sh)"; then
    eval "$deps"
    export CUDNN_ROOT CUBLAS_ROOT
  else
    echo "build:cuda: no wheels unpacked; CMake searches the CUDA toolkit, system paths and site-packages" >&2
  fi
fi
if [ -f node_modules/cmake-js/bin/cmake-js ]; then
  cmakejs="node node_modules/cmake-js/bin/cmake-js"
elif command -v cmake-js >/dev/null 2>&1; then
  cmakejs="cmake-js"
else
  echo "build:cuda: cmake-js is not installed (an installed package lacks the devDependencies): npm install -g cmake-js, then run this again" >&2
  exit 2
fi
exec $cmakejs compile -O build-cmake --CDSELFLABEL_CUDA=ON "$@"
