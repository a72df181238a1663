#!/usr/bin/env sh
# npm run build:nccl: build the optional libselflabel_nccl.so (native/mpi/nccl.cpp,
# sln/nccl_api.h) and its probe build-mpi/nccl_check (native/mpi/nccl_check.cpp)
# into build-mpi/ (SELFLABEL_MPI_OUT overrides). Needs the CUDA toolkit (headers
# and libcudart_static; found from CUDA_HOME or nvcc) and NCCL (headers and
# libnccl.so.2), searched in NCCL_ROOT, this repository's .cache/nccl-deps
# (unpacked here from nvidia_nccl_cu13-*.whl when the wheel is on disk, as
# scripts/cuda-deps.sh does for cuDNN), python3's site-packages/nvidia/nccl,
# then the system (/usr/include/nccl.h). The library's RPATH points at NCCL's
# lib folder. Prints the library's path; exits 1 naming what is missing.
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${SELFLABEL_MPI_OUT:-$root/build-mpi}"
cxx="${CXX:-g++}"

cuda="${CUDA_HOME:-}"
if [ -z "$cuda" ] && command -v nvcc >/dev/null 2>&1; then cuda="$(cd "$(dirname "$(readlink -f "$(command -v nvcc)")")/.." && pwd)"; fi
if [ ! -f "$cuda/include/cuda_runtime.h" ] && [ -f /usr/local/cuda/include/cuda_runtime.h ]; then cuda=/usr/local/cuda; fi
if [ -z "$cuda" ] || [ ! -f "$cuda/include/cuda_runtime.h" ]; then
  echo "build:nccl: no CUDA toolkit found (set CUDA_HOME or put nvcc on PATH)" >&2
  exit 1
fi
cudalib="$cuda/lib64"
[ -f "$cudalib/libcudart_static.a" ] || cudalib="$cuda/lib"

nccl="${NCCL_ROOT:-}"
if [ -z "$nccl" ]; then
  dep="$root/.cache/nccl-deps/nvidia/nccl"
  if [ ! -f "$dep/include/nccl.h" ]; then
    whl=""
    for d in "${SELFLABEL_WHEEL_DIR:-}" /opt/pypi-more/files /opt/pypi/files /opt/wheels "$HOME/.cache/selflabel-wheels" "$root/.cache/wheels"; do
      [ -n "$d" ] && [ -d "$d" ] || continue
      whl="$(ls -1 "$d"/nvidia_nccl_cu13-*.whl 2>/dev/null | sort -V | tail -n 1 || true)"
      [ -n "$whl" ] && break
    done
    if [ -n "$whl" ]; then
      echo "build:nccl: unpacking $(basename "$whl")" >&2
      mkdir -p "$root/.cache/nccl-deps"
      python3 - "$whl" "$root/.cache/nccl-deps" <<'PY'
import fnmatch, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for n in z.namelist():
        if fnmatch.fnmatch(n, "nvidia/nccl/include/*") or fnmatch.fnmatch(n, "nvidia/nccl/lib/libnccl.so*"):
            z.extract(n, sys.argv[2])
PY
    fi
  fi
  if [ -f "$dep/include/nccl.h" ]; then
    nccl="$dep"
  else
    sp="$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null || true)"
    for s in $sp; do
      if [ -f "$s/nvidia/nccl/include/nccl.h" ]; then nccl="$s/nvidia/nccl"; break; fi
    done
  fi
  if [ -z "$nccl" ] && [ -f /usr/include/nccl.h ]; then nccl=/usr; fi
fi
if [ -z "$nccl" ] || [ ! -f "$nccl/include/nccl.h" ]; then
  echo "build:nccl: NCCL not found (set NCCL_ROOT, pip install nvidia-nccl-cu13, or install libnccl-dev)" >&2
  exit 1
fi
nlib="$nccl/lib"
[ -e "$nlib/libnccl.so.2" ] || nlib="/usr/lib/x86_64-linux-gnu"
mkdir -p "$out"
flags="-std=c++17 -O2 -fPIC -Wall -I$root/native/include -I$cuda/include -I$nccl/include"
links="-L$cudalib -lcudart_static -ldl -lpthread -lrt"
tmp="$out/libselflabel_nccl.so.tmp.$$"
$cxx $flags -shared -fvisibility=hidden "$root/native/mpi/nccl.cpp" -o "$tmp" "$nlib/libnccl.so.2" $links -Wl,-rpath,"$nlib"
mv -f "$tmp" "$out/libselflabel_nccl.so"
$cxx $flags "$root/native/mpi/nccl_check.cpp" -o "$out/nccl_check" $links
echo "$out/libselflabel_nccl.so"
