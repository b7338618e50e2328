#!/usr/bin/env bash
# tools/setup-debian.sh - installs what wisp needs to build, test and
# benchmark on Debian 12, with apt-get (through sudo when not root).
#   tools/setup-debian.sh          build + test dependencies
#   tools/setup-debian.sh --bench  also the peers' toolchains (Rust crates,
#                                  TBB, Go), nginx and wrk for the server
#                                  comparisons
set -euo pipefail

packages=(build-essential cmake pkg-config libjemalloc-dev liburing-dev check clang systemtap-sdt-dev python3)
if [ "${1:-}" = "--bench" ]; then
    packages+=(cargo librust-tokio-dev librust-rayon-dev libtbb-dev g++ golang-go nginx wrk)
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "setup: all packages present" >&2
    exit 0
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >&2
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
