#!/usr/bin/env sh
# npm run prebuilds: the prebuilt addon for linux-x64 glibc with the shared
# libraries it needs beyond glibc and libstdc++ (oneDNN, the OpenMP runtime and
# oneDNN's OpenCL loader) beside it in prebuilds/linux-x64/. The addon is linked
# with an $ORIGIN rpath (binding.gyp, DT_RPATH so that oneDNN's own
# dependencies are found there too), so `npm install` of the packed tarball
# needs neither a compiler nor libdnnl-dev. The licences of the bundled
# libraries go to prebuilds/linux-x64/licenses/. sources.sha256 beside the
# addon records the native sources it was built from (scripts/source-hash.js:
# the install step rebuilds from source rather than load an addon that differs).
#   --addon FILE   bundle this built addon instead of running node-gyp rebuild
#   --out DIR      write DIR/linux-x64 (default: prebuilds)
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
addon=""
out="prebuilds"
while [ $# -gt 0 ]; do
  case "$1" in
    --addon) addon="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "prebuilds: unknown argument '$1' (use --addon FILE, --out DIR)" >&2; exit 2 ;;
  esac
done
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "prebuilds: only linux-x64 is made here (this is $(uname -s)-$(uname -m))" >&2
  exit 2
fi
if [ -z "$addon" ]; then
  node node_modules/node-gyp/bin/node-gyp.js rebuild
  addon="build/Release/selflabel_native.node"
fi
[ -f "$addon" ] || { echo "prebuilds: no addon at $addon" >&2; exit 2; }
readelf -d "$addon" | grep -q 'RPATH.*\[\$ORIGIN\]' || {
  echo "prebuilds: $addon has no \$ORIGIN DT_RPATH (binding.gyp's ldflags); rebuild it" >&2
  exit 1
}
dir="$out/linux-x64"
rm -rf "$dir"
mkdir -p "$dir/licenses"
cp "$addon" "$dir/node.napi.glibc.node"
# the record of a build (scripts/install.js writes it) or, for an addon built by
# hand, the sources here
if [ -f "$(dirname "$addon")/sources.sha256" ]; then
  cp "$(dirname "$addon")/sources.sha256" "$dir/sources.sha256"
else
  node -e '
    const n = require("./scripts/source-hash").newestSource(".");
    if (n.mtimeMs > require("fs").statSync(process.argv[1]).mtimeMs) {
      console.error(`prebuilds: ${process.argv[1]} is older than ${n.file}; rebuild it`);
      process.exit(1);
    }' "$addon"
  node scripts/source-hash.js > "$dir/sources.sha256"
fi
strip --strip-unneeded "$dir/node.napi.glibc.node"

# Libraries that every glibc system has stay out; everything else ldd resolves
# for the addon (and, through it, for oneDNN) is copied under its soname.
system='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.'
ldd "$addon" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | while read -r name file; do
  if printf '%s\n' "$name" | grep -Eq "$system"; then continue; fi
  cp -L "$file" "$dir/$name"
  chmod 644 "$dir/$name"
  if readelf -d "$dir/$name" | grep -q RUNPATH; then
    echo "prebuilds: $file has a RUNPATH; its dependencies would not be looked up beside it" >&2
    exit 1
  fi
  pkg="$(dpkg -S "$file" 2>/dev/null | head -n1 | cut -d: -f1 || true)"
  if [ -z "$pkg" ]; then pkg="$(dpkg -S "$(readlink -f "$file")" 2>/dev/null | head -n1 | cut -d: -f1 || true)"; fi
  if [ -n "$pkg" ] && [ -f "/usr/share/doc/$pkg/copyright" ]; then
    cp "/usr/share/doc/$pkg/copyright" "$dir/licenses/$pkg.copyright"
    echo "$name $pkg $(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null)" >> "$dir/licenses/BUNDLED.txt"
  else
    echo "$name (no Debian package found: add its licence by hand)" >> "$dir/licenses/BUNDLED.txt"
  fi
done
[ -f "$dir/libdnnl.so.2" ] || { echo "prebuilds: libdnnl.so.2 was not bundled (is the addon linked against oneDNN?)" >&2; exit 1; }

# Check: every bundled library resolves to the bundled copy, and the addon loads.
missing="$(ldd "$dir/node.napi.glibc.node" | awk -v d="$(cd "$dir" && pwd)" '$2 == "=>" && $3 !~ /^\// { print $1 } ')"
[ -z "$missing" ] || { echo "prebuilds: unresolved: $missing" >&2; exit 1; }
for f in "$dir"/*.so*; do
  n="$(basename "$f")"
  ldd "$dir/node.napi.glibc.node" | grep -q "$n => $(cd "$dir" && pwd)/$n" || {
    echo "prebuilds: $n does not resolve to the bundled copy" >&2
    exit 1
  }
done
node -e "const a = require(process.argv[1]); console.log('prebuilds: ' + process.argv[1] + ': ' + a.info().cpu)" "$(cd "$dir" && pwd)/node.napi.glibc.node"
du -sh "$dir" | awk '{ print "prebuilds: " $2 " holds " $1 }'
