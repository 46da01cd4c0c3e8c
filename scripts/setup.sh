#!/usr/bin/env bash
# Installs the Debian packages Tandem's build, tests, demo and benchmarks need, when missing.
# Idempotent and quiet when everything is present. Needs root (or sudo) only to install.
set -euo pipefail

packages=(
    liburing-dev liblz4-dev libssl-dev pkg-config          # build: system library modules
    libnbd-bin nbdkit qemu-utils qemu-system-common fio    # tests: real NBD clients and a peer
                                                           # (libnbd-bin ships nbdfuse: volumes that fail or lose power)
    e2fsprogs mount                                        # disk-failure tests: a small loop-mounted ext4
    openssl ca-certificates python3                        # certificates; readiness and JSON helpers
    resource-agents libxml2-utils                          # tests: ocf-tester, the OCF DTD, xmllint
    python3-prometheus-client prometheus                   # tests: parse (/usr/bin/python3) and lint (promtool) metrics
    strace                                                 # tests: kill -9 at metadata crash points (fault injection)
    rsync                                                  # benchmarks: catch-up against rsync --inplace --no-whole-file
    iproute2                                               # tests and benchmarks: a tc-shaped link in a network namespace (tandem-bench rpo)
)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if ((${#missing[@]} > 0)); then
    echo "setup: installing ${missing[*]}" >&2
    sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null; then
    cat >&2 <<'MSG'
setup: the Swift toolchain (6.1 or later) is not on PATH.
Install it from https://www.swift.org/install/linux/ (e.g. with swiftly), then rerun.
MSG
    exit 1
fi
