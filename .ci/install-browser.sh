#!/usr/bin/env bash
# Install headless Chromium and its WebDriver (Debian packages), for tests/test_report.py.
# Idempotent: does nothing but print versions when both are already installed.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)

if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    echo "installing: chromium chromium-driver (missing: ${missing[*]})"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends chromium chromium-driver
else
    echo "chromium and chromium-driver already installed"
fi

chromium --version
/usr/bin/chromedriver --version
