#!/bin/sh
# Builds the Tokio peer offline from Debian's crates: see ../cargo-build.sh.
#   bench/peers/tokio/build.sh OUT_DIR
exec "$(dirname "$0")/../cargo-build.sh" tokio "$@"
