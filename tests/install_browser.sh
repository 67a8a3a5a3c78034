#!/bin/sh
# Installs Debian's headless Chromium and its driver for the report's browser tests, where it can: only when
# chromedriver is missing and apt-get is usable (root). Never fails: without a browser those tests skip and
# say why.
if [ -x /usr/bin/chromedriver ] || command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: no chromedriver and no root apt-get here: the browser tests will be skipped" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; then
    echo "install_browser: installed chromium and chromium-driver" >&2
else
    echo "install_browser: could not install chromium chromium-driver: the browser tests will be skipped" >&2
fi
exit 0
