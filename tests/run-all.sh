#!/usr/bin/env bash
# tests/run-all.sh - sets up, builds and runs the whole test suite in the
# builds CI uses: Release with jemalloc, Release without metrics and
# tracing, ThreadSanitizer, and AddressSanitizer + UndefinedBehaviorSanitizer
# (halt on the first error, leak detection on); then the installed tree and
# a parent project that adds wisp with add_subdirectory.  Build trees go to
# build-test-*/.
#   tests/run-all.sh            everything
#   tests/run-all.sh release    only one of: release, bare, tsan, asan
set -euo pipefail
cd "$(dirname "$0")/.."

tools/setup-debian.sh

jobs=$(nproc)
only="${1:-all}"

build_and_test() {
    local name=$1
    shift
    echo "==== $name build"
    cmake -S . -B "build-test-$name" -DWISP_BUILD_BENCH=ON "$@" >/dev/null
    cmake --build "build-test-$name" -j "$jobs"
    echo "==== $name tests"
    (cd "build-test-$name" && ctest --output-on-failure --timeout 900)
}

# Installs the release build into a prefix, then builds README's example
# against it twice: with pkg-config, and as a CMake find_package consumer.
check_install() {
    local prefix
    prefix="$(pwd)/build-test-release/prefix"
    echo "==== install check"
    rm -rf "$prefix"
    cmake --install build-test-release --prefix "$prefix" >/dev/null
    local pc
    pc=$(dirname "$(find "$prefix" -name wisp.pc | head -n 1)")
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Wextra -Werror -o build-test-release/example-pkgconfig tests/example.c \
        $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs wisp) -pthread
    LD_LIBRARY_PATH="$(dirname "$pc")" build-test-release/example-pkgconfig >/dev/null
    cmake -S tests/install -B build-test-release/consumer -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
    cmake --build build-test-release/consumer >/dev/null
    LD_LIBRARY_PATH="$(dirname "$pc")" build-test-release/consumer/consumer >/dev/null
    tests/check-symbols.sh "$(dirname "$pc")/libwisp.a"
    # The servers are installed to bin/ and find libwisp.so there by RPATH.
    for p in wisp-echo wisp-httpd wisp-load; do
        "$prefix/bin/$p" --help | grep -q '^usage: '"$p"
    done
    echo "install check passed: pkg-config, find_package(wisp), static symbols, bin/wisp-{echo,httpd,load}"
}

# A parent project adds wisp with add_subdirectory, with and without a build
# type of its own: wisp must build there and leave the parent's cache alone.
check_subproject() {
    echo "==== subproject check"
    local dir=build-test-release/parent
    rm -rf "$dir" "$dir-typed"
    cmake -S tests/subproject -B "$dir" -DWISP_PARENT_EXPECT_BUILD_TYPE= >/dev/null
    cmake --build "$dir" -j "$jobs" >/dev/null
    "$dir/parent" >/dev/null
    "$dir/parent_static" >/dev/null
    cmake -S tests/subproject -B "$dir-typed" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DWISP_PARENT_EXPECT_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$dir-typed" -j "$jobs" >/dev/null
    "$dir-typed/parent" >/dev/null
    echo "subproject check passed: add_subdirectory(wisp), shared and static"
}

if [ "$only" = all ] || [ "$only" = release ]; then
    build_and_test release -DCMAKE_BUILD_TYPE=Release -DWISP_JEMALLOC=ON
    check_install
    check_subproject
fi
if [ "$only" = all ] || [ "$only" = bare ]; then
    build_and_test bare -DCMAKE_BUILD_TYPE=Release -DWISP_METRICS=OFF -DWISP_TRACING=OFF
fi
if [ "$only" = all ] || [ "$only" = tsan ]; then
    TSAN_OPTIONS="halt_on_error=1:abort_on_error=1:second_deadlock_stack=1" \
    WISP_STRESS=1 CK_TIMEOUT_MULTIPLIER=4 \
        build_and_test tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
            -DWISP_SANITIZE=thread
fi
if [ "$only" = all ] || [ "$only" = asan ]; then
    # CK_FORK=no: each suite runs in one process, so LeakSanitizer checks it
    # all at exit (a forked test child's leaks would go unreported).
    ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
    WISP_STRESS=1 CK_FORK=no \
        build_and_test asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
            -DWISP_SANITIZE=address,undefined
fi
echo "==== all tests passed"
