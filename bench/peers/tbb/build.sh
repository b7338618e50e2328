#!/bin/sh
# Build the oneTBB peer benchmark.
#
#   bench/peers/tbb/build.sh OUT_DIR
#
# Produces OUT_DIR/wisp-bench-tbb (C++17, g++ -O2, linked against the tbb
# pkg-config module from Debian's libtbb-dev). CXX overrides the compiler.
# If the compiler, pkg-config or the tbb module is missing, prints one
# "skip tbb: <reason>" line to stderr and exits 0 without a binary.
set -eu

BIN=wisp-bench-tbb
CXX=${CXX:-g++}

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi

if ! command -v "$CXX" >/dev/null 2>&1; then
    echo "skip tbb: C++ compiler '$CXX' not found on PATH (install g++)" >&2
    exit 0
fi
if ! command -v pkg-config >/dev/null 2>&1; then
    echo "skip tbb: pkg-config not found on PATH (install pkg-config)" >&2
    exit 0
fi
if ! pkg-config --exists tbb; then
    echo "skip tbb: no tbb pkg-config module (install libtbb-dev)" >&2
    exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)

# shellcheck disable=SC2046 # pkg-config output is meant to be word-split
"$CXX" -std=c++17 -O2 -pthread $(pkg-config --cflags tbb) \
    -o "$out/$BIN.tmp" "$here/wisp_bench_tbb.cpp" $(pkg-config --libs tbb)
mv -f "$out/$BIN.tmp" "$out/$BIN"
echo "built $out/$BIN" >&2
