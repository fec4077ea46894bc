#!/usr/bin/env bash
# Build the workload images from workload/Dockerfile, offline: local debootstrap base, host wheelhouse.
#
# Usage: scripts/build-images.sh [TARGET...]
#   TARGET: train serve function-aws function-gcp function-azure (default: all of them)
# Environment:
#   TRAIN_VARIANT=gpu|cpu     trainer flavour (default gpu; gpu adds ~3 GB of NVIDIA wheels to the wheelhouse)
#   BASE_IMAGE=...            base for every target (default: scripts/build-base.sh's local Debian image);
#   AZURE_BASE_IMAGE=...      base for function-azure (default: BASE_IMAGE; the real Functions host is only
#                             in Microsoft's image, the Dockerfile's default when building online)
#   BUILD_CACHE_KEEP=12GB     BuildKit cache kept after the builds (least recently used goes first)
# Tags: cloud-ai/<target>:latest, the trainer cloud-ai/train:<variant>. Each build's log goes to
# .images/build-<target>.log and is printed when the build fails.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-/usr/bin/docker}
TRAIN_VARIANT=${TRAIN_VARIANT:-gpu}
ALL=(train serve function-aws function-gcp function-azure)
targets=("$@")
((${#targets[@]})) || targets=("${ALL[@]}")

for target in "${targets[@]}"; do
    if [[ " ${ALL[*]} " != *" $target "* ]]; then
        echo "build-images: unknown target '$target' (${ALL[*]})" >&2
        exit 2
    fi
done
if [[ $TRAIN_VARIANT != gpu && $TRAIN_VARIANT != cpu ]]; then
    echo "build-images: TRAIN_VARIANT is gpu or cpu, not '$TRAIN_VARIANT'" >&2
    exit 2
fi

# The wheels must match the image's Python (3.11): the project's venv when there is one.
if [[ -z ${PYTHON:-} ]]; then
    PYTHON=python3
    [[ -x .venv/bin/python ]] && PYTHON=.venv/bin/python
fi
export PYTHON

BASE_IMAGE=${BASE_IMAGE:-$(scripts/build-base.sh)}
AZURE_BASE_IMAGE=${AZURE_BASE_IMAGE:-$BASE_IMAGE}

flavours=(cpu)
if [[ $TRAIN_VARIANT == gpu && " ${targets[*]} " == *" train "* ]]; then
    flavours+=(gpu)
    wheels=$(scripts/wheelhouse.sh --gpu)
else
    wheels=$(scripts/wheelhouse.sh)
fi

# The build context is the repository; hard links put the cached wheelhouse into it without copying.
# Only the flavours this build uses: the GPU wheels (3 GB) would slow every context transfer.
rm -rf .images/wheels .images/project
mkdir -p .images/wheels
for flavour in "${flavours[@]}"; do
    cp -al "$wheels/$flavour" .images/wheels/ 2>/dev/null || cp -a "$wheels/$flavour" .images/wheels/
done
# The project's own wheel; a fixed timestamp makes it byte-identical while the sources are, so its
# layer stays cached. setuptools builds in build/ and never deletes what the sources no longer have, so a
# leftover build/ would ship removed modules: it goes first.
rm -rf build
SOURCE_DATE_EPOCH=315532800 "$PYTHON" -m pip wheel -qq --no-deps --no-build-isolation -w .images/project . >&2

# Every rebuild leaves the replaced image and more build cache behind; on a machine that builds on each
# CI run that filled the disk, so the replaced image goes and the cache is held to BUILD_CACHE_KEEP.
trap '"$DOCKER" builder prune -f --keep-storage "${BUILD_CACHE_KEEP:-12GB}" >/dev/null || true' EXIT

for target in "${targets[@]}"; do
    tag=cloud-ai/$target:latest
    [[ $target == train ]] && tag=cloud-ai/train:$TRAIN_VARIANT
    log=.images/build-$target.log
    replaced=$("$DOCKER" image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    echo "build-images: $tag (log: $log)" >&2
    start=$SECONDS
    if ! DOCKER_BUILDKIT=1 "$DOCKER" build --progress=plain -f workload/Dockerfile --target "$target" \
        --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg AZURE_BASE_IMAGE="$AZURE_BASE_IMAGE" \
        --build-arg TRAIN_VARIANT="$TRAIN_VARIANT" -t "$tag" . >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "build-images: building $tag failed (full log: $log)" >&2
        exit 1
    fi
    if [[ -n $replaced && $replaced != $("$DOCKER" image inspect --format '{{.Id}}' "$tag") ]]; then
        "$DOCKER" image rm "$replaced" >/dev/null 2>&1 || true
    fi
    size=$("$DOCKER" image inspect --format '{{.Size}}' "$tag")
    echo "build-images: $tag built in $((SECONDS - start)) s, $((size / 1000000)) MB" >&2
done
