#!/usr/bin/env bash
# Fill .device/ (git-ignored) with what scripts/device-check.sh needs on a lent
# GPU machine, which has no network, maybe no Node.js and maybe no oneDNN
# (GPU.md), then print the `carry` list for the device tool:
#   .device/node.xz            this machine's node binary, xz-compressed
#   .device/lib.tar.xz         the addon's shared libraries that a bare machine may
#                              lack (libdnnl.so.2, libgomp.so.1, libOpenCL.so.1)
#   .device/include.tar.xz     oneDNN's headers (only for a CMake configure there)
#   .device/node_modules.tar.xz the runtime dependencies (npm ls --omit=dev)
#   .device/addon/selflabel_native.node  the CPU addon built here
#   .device/addon/selflabel_native_test.node  the test-only addon (scripts/build-test-addon.js)
# plus .build-ts (the compiled TypeScript: lib, tests, benchmarks) and, when
# built here, build-cmake/Release/libselflabel_cuda.so.
# usage: scripts/device-prepare.sh        (from anywhere; works in the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
D=.device
mkdir -p "$D/addon"

echo "== compile TypeScript (.build-ts)"
npx tsc -p tsconfig.dev.json

echo "== CPU addon"
[ -f build/Release/selflabel_native.node ] || npm run build:native
cp build/Release/selflabel_native.node "$D/addon/selflabel_native.node"

echo "== test-only addon (the float64 reference and the op harness of test/gpu/ops.test.ts)"
cp "$(node scripts/build-test-addon.js)" "$D/addon/selflabel_native_test.node"

echo "== node binary"
NODE_BIN=$(command -v node)
if [ ! -f "$D/node.xz" ] || [ "$NODE_BIN" -nt "$D/node.xz" ]; then
  xz -T2 -6 -c "$NODE_BIN" > "$D/node.xz.tmp" && mv "$D/node.xz.tmp" "$D/node.xz"
fi

echo "== shared libraries of the addon"
LIBS=()
for name in libdnnl.so.2 libgomp.so.1 libOpenCL.so.1; do
  p=$(ldd "$D/addon/selflabel_native.node" | awk -v n="$name" '$1 == n { print $3 }')
  [ -n "$p" ] && LIBS+=("$(readlink -f "$p")=$name")
done
tmpd=$(mktemp -d)
for pair in "${LIBS[@]}"; do cp "${pair%%=*}" "$tmpd/${pair##*=}"; done
tar -C "$tmpd" -cJf "$D/lib.tar.xz" .
rm -rf "$tmpd"

echo "== oneDNN headers"
hdrs=$(cd /usr/include && ls -d dnnl*.h* oneapi 2>/dev/null || true)
if [ -n "$hdrs" ]; then (cd /usr/include && tar -cJf "$OLDPWD/$D/include.tar.xz" $hdrs); fi

echo "== runtime node_modules"
mods=$(npm ls --omit=dev --parseable --all 2>/dev/null | tail -n +2 | sed "s|^$PWD/||" | sort -u)
tar -cJf "$D/node_modules.tar.xz" $mods

CARRY='[".device", ".build-ts"'
[ -f build-cmake/Release/libselflabel_cuda.so ] && CARRY="$CARRY, \"build-cmake/Release/libselflabel_cuda.so\""
CARRY="$CARRY]"
du -ch "$D"/node.xz "$D"/*.tar.xz "$D"/addon/* .build-ts $( [ -f build-cmake/Release/libselflabel_cuda.so ] && echo build-cmake/Release/libselflabel_cuda.so) | tail -n 20
echo "carry: $CARRY"
echo "command: bash scripts/device-check.sh"
