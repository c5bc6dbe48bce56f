#!/usr/bin/env bash
# Installs libtorch (from PyPI's torch==2.13.0 wheel, the version tch 0.26 links
# against) into a project-local venv and points `.libtorch` at it.
# Re-running is a no-op once the stamp file exists.
#
#   T2I_CUDA=1 scripts/setup.sh   # full CUDA wheel (needed for --features cuda)
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION=2.13.0
stamp=.venv/.t2i-setup-${TORCH_VERSION}${T2I_CUDA:+-cuda}
if [ -f "$stamp" ] && [ -e .libtorch/lib/libtorch_cpu.so ]; then
  exit 0
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if [ -n "${T2I_CUDA:-}" ]; then
  .venv/bin/pip install --quiet torch==${TORCH_VERSION}
else
  # The CPU build needs only the torch wheel itself plus the two small CUDA
  # runtime stubs its libraries reference (517 MB in all).
  .venv/bin/pip install --quiet --no-deps torch==${TORCH_VERSION} \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
fi
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
ln -sfn "$site/torch" .libtorch
touch "$stamp"
echo "libtorch ready: $(readlink .libtorch)"
