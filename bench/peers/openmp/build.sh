#!/bin/sh
# Build the OpenMP peer benchmark.
#
#   bench/peers/openmp/build.sh OUT_DIR
#
# Produces OUT_DIR/wisp-bench-openmp (C11, gcc -O2 -fopenmp, i.e. GCC's
# libgomp). CC overrides the compiler. If the compiler is missing or cannot
# build OpenMP programs (no libgomp), prints one "skip openmp: <reason>" line
# to stderr and exits 0 without a binary.
set -eu

BIN=wisp-bench-openmp
CC=${CC:-gcc}

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "skip openmp: C compiler '$CC' not found on PATH (install gcc)" >&2
    exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)

# Probe first, so a compiler without OpenMP support is a skip, not an error.
probe="$out/$BIN.probe"
if ! printf '#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n' |
    "$CC" -fopenmp -x c -o "$probe" - >/dev/null 2>&1; then
    rm -f "$probe"
    echo "skip openmp: '$CC -fopenmp' cannot build OpenMP programs (install gcc's libgomp: libgcc-12-dev)" >&2
    exit 0
fi
rm -f "$probe"

"$CC" -std=c11 -O2 -fopenmp -o "$out/$BIN.tmp" "$here/wisp_bench_openmp.c"
mv -f "$out/$BIN.tmp" "$out/$BIN"
echo "built $out/$BIN" >&2
