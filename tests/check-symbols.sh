#!/usr/bin/env bash
# tests/check-symbols.sh ARCHIVE - fails if the static library defines a
# global symbol outside wisp's namespace (wisp_* public, wisp__* internal):
# a program linking libwisp.a must never collide with wisp's internals.
set -euo pipefail
archive=$1
[ -f "$archive" ] || { echo "check-symbols: no such archive: $archive" >&2; exit 1; }
nm_tool=nm
command -v gcc-nm >/dev/null && nm_tool=gcc-nm # reads LTO objects too
names=$("$nm_tool" -g --defined-only "$archive" | awk 'NF == 3 { print $3 }' | sort -u)
[ -n "$names" ] || { echo "check-symbols: no symbols read from $archive" >&2; exit 1; }
# _.stapsdt.base: emitted, weak and hidden, by <sys/sdt.h> in every object
# with a USDT probe, and meant to be shared by all of them.
stray=$(printf '%s\n' "$names" | grep -v -E '^(wisp_|_\.stapsdt\.base$)' || true)
if [ -n "$stray" ]; then
    echo "check-symbols: $archive defines globals outside wisp_*/wisp__*:" >&2
    printf '  %s\n' $stray >&2
    exit 1
fi
echo "check-symbols: $(printf '%s\n' "$names" | wc -l) globals, all wisp_* or wisp__*"
