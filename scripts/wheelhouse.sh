#!/usr/bin/env bash
# Build, on the host, the wheelhouse the images install from with `pip --no-index`: pip inside a container
# cannot reach this network's package proxy, and an air-gapped build has no index at all.
#
# Usage: scripts/wheelhouse.sh [--gpu]      prints the wheelhouse directory
# It holds cpu/: every wheel of the CPU images and their requirements files
# (requirements-{train-cpu,serve,function}.txt), and with --gpu also gpu/: tensorflow[and-cuda], the
# NVIDIA wheels (about 3 GB) and the rest of the GPU trainer's (requirements-train-gpu.txt). Separate
# folders, so that adding the GPU wheels never changes what the CPU images' layers are keyed on.
# The directory is keyed by what decides its content (pyproject.toml, requirements.py, the Python
# version, LAYOUT below), so it is reused until that changes, and older ones are removed.
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

LAYOUT=2  # bump when this script changes what goes into the wheelhouse
key=$( (cat pyproject.toml scripts/requirements.py; echo "$version $LAYOUT") | sha256sum | cut -c1-12)
dir=$CACHE/wheels-$key
mkdir -p "$dir/cpu" "$dir/gpu"

requirements() { "$PYTHON" scripts/requirements.py "$@"; }
requirements train >"$dir/cpu/requirements-train-cpu.txt"
requirements serve >"$dir/cpu/requirements-serve.txt"
requirements function >"$dir/cpu/requirements-function.txt"
requirements train --tf-package 'tensorflow[and-cuda]' >"$dir/gpu/requirements-train-gpu.txt"

wheel() {  # wheel FLAVOUR REQUIREMENTS...: pip wheel into $dir/FLAVOUR once; a stamp marks it complete
    local into=$dir/$1 stamp=$dir/.done-$1
    shift
    [[ -e $stamp ]] && return 0
    echo "wheelhouse: pip wheel into $into" >&2
    "$PYTHON" -m pip wheel -qq --wheel-dir "$into" "${@/#/--requirement=$into/}" >&2
    touch "$stamp"
}
wheel cpu requirements-serve.txt requirements-function.txt
if ((GPU)); then wheel gpu requirements-train-gpu.txt; fi
find "$CACHE" -maxdepth 1 -name 'wheels-*' ! -path "$dir" -exec rm -rf {} +
echo "$dir"
