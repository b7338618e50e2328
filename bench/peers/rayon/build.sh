#!/bin/sh
# Builds the Rayon peer offline from Debian's crates: see ../cargo-build.sh.
#   bench/peers/rayon/build.sh OUT_DIR
exec "$(dirname "$0")/../cargo-build.sh" rayon "$@"
