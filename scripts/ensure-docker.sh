#!/usr/bin/env bash
# Make a Docker engine usable here: install Debian's docker.io and debootstrap if missing, start dockerd
# if nothing answers on the socket, and wait until it does. Idempotent; exits non-zero with the reason.
#
# No image registry is reachable from these machines, so nothing here pulls: images are built from a
# local debootstrap base (scripts/build-base.sh).
set -euo pipefail

LOG=${DOCKERD_LOG:-/var/log/cloud-ai-dockerd.log}
# Debian's client matches Debian's daemon; a newer static client elsewhere on PATH may lack buildx.
DOCKER=${DOCKER:-/usr/bin/docker}

need_packages=()
[[ -x /usr/sbin/dockerd && -x $DOCKER ]] || need_packages+=(docker.io)
command -v debootstrap >/dev/null || need_packages+=(debootstrap)
if ((${#need_packages[@]})); then
    echo "ensure-docker: installing ${need_packages[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
fi

if ! "$DOCKER" info >/dev/null 2>&1; then
    echo "ensure-docker: starting dockerd (log: $LOG)" >&2
    # setsid: the daemon outlives this script and make; it is left running for later builds and tests.
    setsid /usr/sbin/dockerd --storage-driver=overlay2 >>"$LOG" 2>&1 </dev/null &
    for _ in $(seq 60); do
        "$DOCKER" info >/dev/null 2>&1 && break
        sleep 1
    done
fi

if ! "$DOCKER" info >/dev/null 2>&1; then
    echo "ensure-docker: dockerd did not come up; last lines of $LOG:" >&2
    tail -n 20 "$LOG" >&2 || true
    exit 1
fi
echo "ensure-docker: $("$DOCKER" version --format 'engine {{.Server.Version}}') ready" >&2
