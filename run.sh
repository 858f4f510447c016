#!/usr/bin/env bash
# Installs what herdd needs to build (libsystemd-dev, pkg-config) and runs it:
# by default on 127.0.0.1:8080 with the `hello` handler. Extra arguments go to herdd.
set -euo pipefail
cd "$(dirname "$0")"
if ! dpkg -s libsystemd-dev >/dev/null 2>&1 || ! command -v pkg-config >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libsystemd-dev pkg-config
fi
exec swift run -c release herdd "$@"
