#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the web app's browser test
# (crates/t2i-cli/tests/browser.rs): Debian's chromium and chromium-driver.
# A no-op when chromedriver is already on PATH.
set -euo pipefail
if command -v chromedriver >/dev/null 2>&1; then
    echo "chromedriver ready: $(command -v chromedriver)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: chromedriver is missing and apt-get is not available; install Chromium and its chromedriver" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
echo "chromedriver ready: $(command -v chromedriver)"
