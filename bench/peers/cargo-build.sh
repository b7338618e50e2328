#!/bin/sh
# Builds one Rust peer benchmark offline from Debian's packaged crates.
#
#   bench/peers/cargo-build.sh PEER OUT_DIR
#
# PEER is the crate directory under bench/peers/ and the crate it measures
# (tokio, rayon). Produces OUT_DIR/NAME for every [[bin]] target NAME of the
# crate's Cargo.toml (wisp-bench-PEER; for tokio also wisp-echo-tokio);
# cargo's home and target directories are OUT_DIR/cargo-home-PEER and
# OUT_DIR/target-PEER, so peers can share OUT_DIR. If cargo or the packaged
# crate (librust-PEER-dev) is missing, prints one "skip PEER: <reason>" line
# to stderr and exits 0 without a binary.
set -eu

REGISTRY=/usr/share/cargo/registry

if [ "$#" -ne 2 ] || [ -z "$1" ] || [ -z "$2" ]; then
    echo "usage: $0 PEER OUT_DIR" >&2
    exit 2
fi
peer=$1

if ! command -v cargo >/dev/null 2>&1; then
    echo "skip $peer: cargo not found on PATH" >&2
    exit 0
fi
# Any packaged 1.x will do; each Cargo.toml asks for "1".
if ! ls -d "$REGISTRY/$peer"-1.* >/dev/null 2>&1; then
    echo "skip $peer: no $peer crate in $REGISTRY (install librust-$peer-dev)" >&2
    exit 0
fi

here=$(cd "$(dirname "$0")/$peer" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)

# Private, writable CARGO_HOME: works whether the caller's CARGO_HOME is
# unset, read-only or carries its own config. The crate's .cargo/config.toml
# already applies because cargo runs from its directory; the copy makes the
# offline source replacement hold for this CARGO_HOME as well.
export CARGO_HOME="$out/cargo-home-$peer"
mkdir -p "$CARGO_HOME"
cp "$here/.cargo/config.toml" "$CARGO_HOME/config.toml"

# The binaries: the name of each [[bin]] table in Cargo.toml (each crate
# here declares its binaries explicitly), else the crate's default one
# (named after the package, wisp-bench-PEER).
bins=$(awk '
    /^[ \t]*\[\[bin\]\]/ { inbin = 1; next }
    /^[ \t]*\[/ { inbin = 0 }
    inbin && /^[ \t]*name[ \t]*=/ {
        sub(/^[^"]*"/, ""); sub(/".*$/, ""); print
    }' "$here/Cargo.toml")
[ -n "$bins" ] || bins=wisp-bench-$peer

cd "$here"
cargo build --release --offline --target-dir "$out/target-$peer"

for bin in $bins; do
    cp "$out/target-$peer/release/$bin" "$out/$bin.tmp"
    mv -f "$out/$bin.tmp" "$out/$bin"
    echo "built $out/$bin" >&2
done
