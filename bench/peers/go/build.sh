#!/bin/sh
# Build the Go (goroutine) peer benchmark offline: standard library only.
#
#   bench/peers/go/build.sh OUT_DIR
#
# Produces OUT_DIR/wisp-bench-go (this directory's package) and
# OUT_DIR/wisp-echo-go (the TCP echo server, package ./echo). Go's build
# cache and GOPATH go under OUT_DIR (nothing is written to $HOME) and no
# module is ever downloaded. If go (Debian: golang-go) is missing, prints
# one "skip go: <reason>" line to stderr and exits 0 without a binary.
set -eu

# OUT_DIR name and package of each binary.
BINS="wisp-bench-go:. wisp-echo-go:./echo"

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi

if ! command -v go >/dev/null 2>&1; then
    echo "skip go: go not found on PATH (install golang-go)" >&2
    exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)

# A private, self-contained Go environment: the caller's go env file,
# GOFLAGS and any go.work further up do not apply; caches stay in OUT_DIR;
# no network (GOPROXY=off) and no toolchain switch (GOTOOLCHAIN=local, read
# by Go >= 1.21, ignored by older ones).
GOENV=off
GOFLAGS=
GOWORK=off
GO111MODULE=on
GOPROXY=off
GOSUMDB=off
GOTOOLCHAIN=local
GOCACHE="$out/go-cache"
GOPATH="$out/go-path"
GOMODCACHE="$out/go-path/pkg/mod"
XDG_CONFIG_HOME="$out/go-config"
CGO_ENABLED=0
export GOENV GOFLAGS GOWORK GO111MODULE GOPROXY GOSUMDB GOTOOLCHAIN \
    GOCACHE GOPATH GOMODCACHE XDG_CONFIG_HOME CGO_ENABLED
mkdir -p "$GOCACHE" "$GOPATH" "$XDG_CONFIG_HOME"

cd "$here"
# -buildvcs=false: no git lookup (the source sits inside wisp's repository).
for b in $BINS; do
    bin=${b%%:*}
    pkg=${b#*:}
    go build -buildvcs=false -trimpath -o "$out/$bin.tmp" "$pkg"
    mv -f "$out/$bin.tmp" "$out/$bin"
    echo "built $out/$bin" >&2
done
