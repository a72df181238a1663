#!/bin/sh
# Unpack cuDNN 9 and cuBLAS 13 from NVIDIA's pip wheels into an ignored cache
# folder, so that CMake can compile and link libselflabel_cuda.so on a machine
# that has nvcc but no cuDNN/cuBLAS installed (CI, the dev machine).
#
#   scripts/cuda-deps.sh [--full] [WHEEL_DIR]
#
# WHEEL_DIR (or $SELFLABEL_WHEEL_DIR) is searched first, then a few likely
# folders. Only the parts needed to build are unpacked:
#   .cache/cuda-deps/nvidia/cudnn/{include,lib/libcudnn.so.9}   (the dispatcher)
#   .cache/cuda-deps/nvidia/cu13/{include,lib/libcublas.so.13,lib/libcublasLt.so.13}
# plus the unversioned links (libcudnn.so, libcublas.so, libcublasLt.so).
# --full also unpacks cuDNN's engine sub-libraries (~0.9 GB), needed only to
# RUN the library from this folder on a GPU machine.
#
# Prints the prefix to use as CUDNN_ROOT and CUBLAS_ROOT (two lines, KEY=path)
# on stdout; messages go to stderr. Idempotent: a second run only checks.
set -eu

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${SELFLABEL_CUDA_DEPS:-$root/.cache/cuda-deps}"
full=0
wheel_dir=""
for a in "$@"; do
  case "$a" in
    --full) full=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) wheel_dir="$a" ;;
  esac
done

find_wheel() {  # $1: file glob; prints the newest match in the candidate folders
  local pat="$1" d f
  for d in "$wheel_dir" "${SELFLABEL_WHEEL_DIR:-}" /opt/pypi-more/files /opt/pypi/files /opt/wheels \
           "$HOME/.cache/selflabel-wheels" "$root/.cache/wheels"; do
    [ -n "$d" ] && [ -d "$d" ] || continue
    f="$(ls -1 "$d"/$pat 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$f" ]; then echo "$f"; return 0; fi
  done
  return 1
}

need_unzip() { command -v unzip >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1; }
extract() {  # $1 wheel, rest: member patterns
  local whl="$1"; shift
  if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$whl" "$@" -d "$dest"
  else
    python3 - "$whl" "$dest" "$@" <<'PY'
import fnmatch, sys, zipfile
whl, dest, pats = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if any(fnmatch.fnmatch(n, p) for p in pats):
            z.extract(n, dest)
PY
  fi
}

if ! need_unzip; then
  echo "cuda-deps: neither unzip nor python3 is available to unpack the wheels" >&2
  exit 1
fi

cudnn_dir="$dest/nvidia/cudnn"
cublas_dir="$dest/nvidia/cu13"
mkdir -p "$dest"

# cuDNN: headers + the dispatcher (and with --full the sub-libraries)
if [ ! -f "$cudnn_dir/include/cudnn_version.h" ] || [ ! -f "$cudnn_dir/lib/libcudnn.so.9" ] ||
   { [ "$full" = 1 ] && [ ! -f "$cudnn_dir/lib/libcudnn_graph.so.9" ]; }; then
  whl="$(find_wheel 'nvidia_cudnn_cu13-9.*.whl')" || {
    echo "cuda-deps: no nvidia_cudnn_cu13-9.*.whl found; pass its folder as an argument or set SELFLABEL_WHEEL_DIR" >&2
    exit 1
  }
  echo "cuda-deps: unpacking $(basename "$whl")" >&2
  if [ "$full" = 1 ]; then
    extract "$whl" 'nvidia/cudnn/include/*' 'nvidia/cudnn/lib/*'
  else
    extract "$whl" 'nvidia/cudnn/include/*' 'nvidia/cudnn/lib/libcudnn.so.9'
  fi
fi

# cuBLAS: headers + libcublas + libcublasLt (libcublas needs it)
if [ ! -f "$cublas_dir/include/cublas_v2.h" ] || [ ! -f "$cublas_dir/lib/libcublas.so.13" ] ||
   [ ! -f "$cublas_dir/lib/libcublasLt.so.13" ]; then
  whl="$(find_wheel 'nvidia_cublas-13.*.whl')" || whl="$(find_wheel 'nvidia_cublas_cu13-*.whl')" || {
    echo "cuda-deps: no nvidia_cublas-13.*.whl found; pass its folder as an argument or set SELFLABEL_WHEEL_DIR" >&2
    exit 1
  }
  echo "cuda-deps: unpacking $(basename "$whl")" >&2
  extract "$whl" 'nvidia/cu13/include/cublas*' 'nvidia/cu13/lib/libcublas.so.13' 'nvidia/cu13/lib/libcublasLt.so.13'
fi

ln -sfn libcudnn.so.9 "$cudnn_dir/lib/libcudnn.so"
ln -sfn libcublas.so.13 "$cublas_dir/lib/libcublas.so"
ln -sfn libcublasLt.so.13 "$cublas_dir/lib/libcublasLt.so"

echo "CUDNN_ROOT=$cudnn_dir"
echo "CUBLAS_ROOT=$cublas_dir"
