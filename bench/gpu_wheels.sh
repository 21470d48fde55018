#!/usr/bin/env bash
# Fill .whl/ with the wheels bench/gpu_check.sh installs offline on a GPU machine that has
# torch, transformers and accelerate but no internet. Run it HERE (PyPI reachable), then carry
# .whl/ with the repository copy (it is git-ignored: /.whl/).
#
#   bench/gpu_wheels.sh                 # for the Python of the current venv
#   PYVERS="3.10 3.12" bench/gpu_wheels.sh   # for the GPU machine's Python version(s)
#
# Versions are the ones this project is tested with (the dev venv). Only packages a
# torch+transformers+accelerate box lacks are fetched, without their dependencies (those
# packages' own dependencies are listed too), so torch is never downloaded again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
PYVERS=${PYVERS:-$($PY -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
PKGS=(
  "bitsandbytes==0.50.2" "peft==0.21.2" "nvidia-ml-py==13.615.71" "platformdirs==4.14.9"
  "datasets==5.2.0" "pyarrow==26.0.1" "dill==0.4.1" "xxhash==4.1.0" "multiprocess==0.70.19"
  "pandas==3.1.1" "python-dateutil" "six" "fsspec==2026.9.0"
)
mkdir -p .whl
for v in $PYVERS; do
  echo "== wheels for Python $v"
  $PY -m pip download --quiet --dest .whl --no-deps --only-binary=:all: --implementation cp \
      --python-version "$v" --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 "${PKGS[@]}"
done
du -sh .whl
ls -1 .whl
