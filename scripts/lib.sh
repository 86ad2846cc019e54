# Shared by scripts/test and scripts/demo: find the tree, install what is missing, build what is stale.
sx_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# sx_build DIR [cmake options...]: configure once, then let ninja rebuild only what changed.
sx_build() {
  local dir=$1
  shift
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -S "$sx_root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  fi
  cmake --build "$dir" -- -j"$(nproc)" | { grep -v '^\[' || true; }
  return "${PIPESTATUS[0]}"
}
