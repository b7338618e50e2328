#!/bin/sh
# Build the Rayon peer benchmark offline from Debian's packaged crates.
#
#   bench/peers/rayon/build.sh OUT_DIR
#
# Produces OUT_DIR/wisp-bench-rayon (cargo's target dir is OUT_DIR/target).
# If cargo or the packaged rayon crate (librust-rayon-dev) is missing, prints
# one "skip rayon: <reason>" line to stderr and exits 0 without a binary.
set -eu

REGISTRY=/usr/share/cargo/registry
BIN=wisp-bench-rayon

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "skip rayon: cargo not found on PATH" >&2
    exit 0
fi
# Any packaged rayon 1.x will do; Cargo.toml asks for "1".
if ! ls -d "$REGISTRY"/rayon-1.* >/dev/null 2>&1; then
    echo "skip rayon: no rayon crate in $REGISTRY (install librust-rayon-dev)" >&2
    exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)

# Private, writable CARGO_HOME: works whether the caller's CARGO_HOME is
# unset, read-only or carries its own config. The project's
# .cargo/config.toml already applies because cargo runs from $here; the copy
# makes the offline source replacement hold for this CARGO_HOME as well.
# Own subdirectories (not the Tokio peer's) so both peers can share OUT_DIR.
export CARGO_HOME="$out/cargo-home-rayon"
mkdir -p "$CARGO_HOME"
cp "$here/.cargo/config.toml" "$CARGO_HOME/config.toml"

cd "$here"
cargo build --release --offline --target-dir "$out/target-rayon"

cp "$out/target-rayon/release/$BIN" "$out/$BIN.tmp"
mv -f "$out/$BIN.tmp" "$out/$BIN"
echo "built $out/$BIN" >&2
