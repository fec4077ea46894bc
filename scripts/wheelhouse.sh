#!/usr/bin/env bash
# Build, on the host, the wheelhouse the images install from with `pip --no-index`: pip inside a container
# cannot reach this network's package proxy, and an air-gapped build has no index at all.
#
# Usage: scripts/wheelhouse.sh [--gpu]      prints the wheelhouse directory
# It holds every wheel the images need plus one requirements file per image flavour
# (requirements-{train-cpu,train-gpu,serve,function}.txt). --gpu adds tensorflow[and-cuda] and the
# NVIDIA wheels (about 3 GB) for the GPU trainer. The directory is keyed by what decides its content
# (pyproject.toml, requirements.py, the Python version, LAYOUT below), so it is reused until that changes,
# and older ones are removed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
CACHE=${CLOUD_AI_BUILD_CACHE:-$HOME/.cache/cloud-ai}
GPU=0
[[ ${1:-} == --gpu ]] && GPU=1

# The wheels must fit the image's Python: bookworm's python3 (and the default base image) is 3.11.
version=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if [[ $version != 3.11 ]]; then
    echo "wheelhouse: $PYTHON is Python $version; the images run 3.11 (set PYTHON=python3.11)" >&2
    exit 1
fi

LAYOUT=1  # bump when this script changes what goes into the wheelhouse
key=$( (cat pyproject.toml scripts/requirements.py; echo "$version $LAYOUT") | sha256sum | cut -c1-12)
dir=$CACHE/wheels-$key
mkdir -p "$dir"

requirements() { "$PYTHON" scripts/requirements.py "$@"; }
requirements train >"$dir/requirements-train-cpu.txt"
requirements train --tf-package 'tensorflow[and-cuda]' >"$dir/requirements-train-gpu.txt"
requirements serve >"$dir/requirements-serve.txt"
requirements function >"$dir/requirements-function.txt"

wheel() {  # $1: stamp name; the rest: pip wheel arguments. Skipped when its stamp says it is complete.
    local stamp=$dir/.done-$1
    shift
    [[ -e $stamp ]] && return 0
    echo "wheelhouse: pip wheel $* (into $dir)" >&2
    "$PYTHON" -m pip wheel -qq --wheel-dir "$dir" "$@" >&2
    touch "$stamp"
}
wheel cpu -r "$dir/requirements-serve.txt" -r "$dir/requirements-function.txt"
if ((GPU)); then wheel gpu -r "$dir/requirements-train-gpu.txt"; fi
find "$CACHE" -maxdepth 1 -name 'wheels-*' ! -path "$dir" -exec rm -rf {} +
echo "$dir"
