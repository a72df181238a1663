#!/usr/bin/env sh
# npm run build:mpi: build the optional libselflabel_mpi.so (native/mpi/mpi.cpp)
# against the system MPI with its compiler wrapper (mpicxx; MPICXX overrides),
# into build-mpi/ (SELFLABEL_MPI_OUT overrides). Never linked into the addon:
# lib/distributed loads it on demand for `train --distributed`. Needs an MPI
# with development files (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev).
# Prints the library's path on stdout; exits 1 naming what is missing.
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
cxx="${MPICXX:-mpicxx}"
out="${SELFLABEL_MPI_OUT:-$root/build-mpi}"
if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "build:mpi: $cxx not found: install an MPI with its development files (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev)" >&2
  exit 1
fi
mkdir -p "$out"
tmp="$out/libselflabel_mpi.so.tmp.$$"
"$cxx" -std=c++17 -O2 -fPIC -shared -fvisibility=hidden -Wall -I"$root/native/include" \
  "$root/native/mpi/mpi.cpp" -o "$tmp"
mv -f "$tmp" "$out/libselflabel_mpi.so"
echo "$out/libselflabel_mpi.so"
