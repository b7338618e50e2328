#!/bin/sh
# Build the Tokio peer benchmark offline from Debian's packaged crates.
#
#   bench/peers/tokio/build.sh OUT_DIR
#
# Produces OUT_DIR/wisp-bench-tokio (cargo's target dir is OUT_DIR/target).
# If cargo or the packaged tokio crate (librust-tokio-dev) is missing, prints
# one "skip tokio: <reason>" line to stderr and exits 0 without a binary.
set -eu

REGISTRY=/usr/share/cargo/registry
BIN=wisp-bench-tokio

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "skip tokio: cargo not found on PATH" >&2
    exit 0
fi
# Any packaged tokio 1.x will do; Cargo.toml asks for "1".
if ! ls -d "$REGISTRY"/tokio-1.* >/dev/null 2>&1; then
    echo "skip tokio: no tokio crate in $REGISTRY (install librust-tokio-dev)" >&2
    exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)

# Private, writable CARGO_HOME: works whether the caller's CARGO_HOME is
# unset, read-only or carries its own config. The project's
# .cargo/config.toml already applies because cargo runs from $here; the copy
# makes the offline source replacement hold for this CARGO_HOME as well.
export CARGO_HOME="$out/cargo-home"
mkdir -p "$CARGO_HOME"
cp "$here/.cargo/config.toml" "$CARGO_HOME/config.toml"

cd "$here"
cargo build --release --offline --target-dir "$out/target"

cp "$out/target/release/$BIN" "$out/$BIN.tmp"
mv -f "$out/$BIN.tmp" "$out/$BIN"
echo "built $out/$BIN" >&2
