#!/usr/bin/env bash
# Build the local base image the workload images use when no registry is reachable:
# Debian bookworm (minbase) + python3/venv + CA certificates, made with debootstrap and `docker import`ed.
# bookworm's python3 is 3.11, like the host, so wheels built on the host (scripts/wheelhouse.sh) fit.
#
# Usage: scripts/build-base.sh            prints the image tag; builds only if it is missing
# Cache: the rootfs tarball is kept in $CLOUD_AI_BUILD_CACHE (default ~/.cache/cloud-ai), keyed by what
# decides its content, so a fresh Docker engine re-imports it in seconds instead of re-bootstrapping.
set -euo pipefail

DOCKER=${DOCKER:-/usr/bin/docker}
CACHE=${CLOUD_AI_BUILD_CACHE:-$HOME/.cache/cloud-ai}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates

REVISION=1  # bump when the rootfs changes in a way the line below does not show
key=$(echo "$SUITE $PACKAGES $MIRROR $REVISION" | sha256sum | cut -c1-12)
tag=cloud-ai/base:$SUITE-$key
tarball=$CACHE/base-$SUITE-$key.tar

if "$DOCKER" image inspect "$tag" >/dev/null 2>&1; then
    echo "$tag"
    exit 0
fi

if [[ ! -s $tarball ]]; then
    mkdir -p "$CACHE"
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    echo "build-base: debootstrap $SUITE into $rootfs (about a minute)" >&2
    if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1; then
        tail -n 30 "$CACHE/debootstrap.log" >&2
        echo "build-base: debootstrap failed (log: $CACHE/debootstrap.log)" >&2
        exit 1
    fi
    # What a container never needs: package lists and caches, docs, man pages, other locales' messages.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/*.log \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    find "$CACHE" -maxdepth 1 -name "base-$SUITE-*.tar" ! -path "$tarball" -delete
fi

echo "build-base: importing $tarball as $tag" >&2
"$DOCKER" import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' "$tarball" "$tag" >/dev/null
echo "$tag"
