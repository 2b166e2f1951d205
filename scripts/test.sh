#!/usr/bin/env bash
# Install everything the tests need (CPU torch first, Chromium for the browser tests), then run them.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[test]"
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: chromium not installed; browser tests will be skipped" >&2
  fi
fi
# The OCR tests draw Chinese text onto a page image with this font (issue 15).
if [ ! -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq fonts-noto-cjk >/dev/null) || echo "warning: fonts-noto-cjk not installed; OCR tests will be skipped" >&2
fi
python -m pytest -q "$@"
