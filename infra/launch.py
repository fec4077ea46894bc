"""The startup script every trainer runs, on any cloud: train once, survive reboots, never idle on a GPU.

`startup_script(spec)` renders one bash script (AWS user data, GCP startup-script metadata, Azure custom
data). On boot it installs itself as a systemd unit (so a reboot or a spot restart resumes training),
starts the cloud's metrics agent and a GPU idle watchdog, makes sure Docker has the NVIDIA runtime, logs
in to the registry with the instance's own identity, pulls the train image by digest and runs it with
the store, dataset, model and this node's TF_CONFIG. The container's exit status decides what happens:
0 = exported (write the done marker, stop the instance), 75 = preempted (leave it; the next boot
resumes from the checkpoint), anything else = failed (stop the instance rather than burn GPU hours).
With the done marker present, a boot only stops the instance again.

The few lines that differ per cloud (registry login, metrics agent, how to stop) are data in `CLOUDS`.
State lives under `$CLOUD_AI_STATE_DIR` (default /var/lib/cloud-ai), and every system file it writes
under `$CLOUD_AI_SYSROOT` (default: the root), so tests run it against a temp dir without touching the host.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from infra.config import Workload
from infra.platform import tf_config

STATE_DIR = "/var/lib/cloud-ai"
GPU_IDLE_PERCENT = 5
"""Below this utilization (every GPU, every sample) a minute counts as idle; the AWS alarm uses it too."""
PREEMPTED_EXIT = 75
CWAGENT_NAMESPACE = "CWAgent"
GPU_UTILIZATION_METRIC = "nvidia_smi_utilization_gpu"
TRAIN_ENV = ("MODEL_STORE", "DATASET", "MODEL_NAME", "BACKBONE", "IMAGE_SIZE", "EPOCHS", "TF_CONFIG")


@dataclass(frozen=True)
class LaunchSpec:
    """What one trainer node runs; the cloud's trainer module fills it in."""

    cloud: str
    image: str
    registry: str
    store_url: str
    workload: Workload
    node_index: int
    worker_addresses: tuple[str, ...]
    idle_stop_minutes: int
    extra_env: tuple[tuple[str, str], ...] = ()
    """More (name, value) pairs for the train container, e.g. the Azure storage account adlfs needs."""


@dataclass(frozen=True)
class CloudSnippets:
    """The bash bodies of the three functions that differ per cloud."""

    registry_login: str
    metrics_agent: str
    stop_instance: str


# The CloudWatch agent publishes GPU utilization per instance (aggregated over its GPUs, no host
# dimension) as CWAgent/nvidia_smi_utilization_gpu{InstanceId}, the exact metric the idle alarm reads.
CLOUDWATCH_AGENT_CONFIG = {
    "agent": {"metrics_collection_interval": 60, "omit_hostname": True},
    "metrics": {
        "namespace": CWAGENT_NAMESPACE,
        "append_dimensions": {"InstanceId": "${aws:InstanceId}"},
        "aggregation_dimensions": [["InstanceId"]],
        "metrics_collected": {
            "nvidia_gpu": {
                "measurement": ["utilization_gpu", "utilization_memory", "memory_used", "temperature_gpu"],
                "metrics_collection_interval": 60,
            }
        },
    },
}

_CWAGENT_JSON = json.dumps(CLOUDWATCH_AGENT_CONFIG, separators=(",", ":"))

_AZURE_TOKEN = (
    'curl -fsS -H Metadata:true "http://169.254.169.254/metadata/identity/oauth2/token'
    '?api-version=2018-02-01&resource=https://management.azure.com/" | json_field access_token'
)

CLOUDS: dict[str, CloudSnippets] = {
    "aws": CloudSnippets(
        registry_login=(
            'aws ecr get-login-password --region "$(cut -d. -f4 <<<"$REGISTRY")" \\\n'
            '    | docker login --username AWS --password-stdin "$REGISTRY"'
        ),
        metrics_agent=(
            "ctl=$(command -v amazon-cloudwatch-agent-ctl"
            " || echo /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl)\n"
            'if [ ! -x "$ctl" ]; then\n'
            '  curl -fsSLo "$STATE_DIR/cwagent.deb"'
            " https://amazoncloudwatch-agent.s3.amazonaws.com/ubuntu/amd64/latest/amazon-cloudwatch-agent.deb\n"
            '  dpkg -i -E "$STATE_DIR/cwagent.deb"\n'
            "fi\n"
            f"printf '%s\\n' {shlex.quote(_CWAGENT_JSON)} >\"$STATE_DIR/cwagent.json\"\n"
            '"$ctl" -a fetch-config -m ec2 -s -c "file:$STATE_DIR/cwagent.json"'
        ),
        # Instance-initiated shutdown behavior is "stop": an OS shutdown stops (not terminates) the VM.
        stop_instance="shutdown -h now",
    ),
    "gcp": CloudSnippets(
        registry_login=(
            "curl -fsS -H 'Metadata-Flavor: Google' \\\n"
            "    http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"
            " \\\n"
            "    | json_field access_token | docker login --username oauth2accesstoken --password-stdin "
            '"https://$REGISTRY"'
        ),
        # The Ops Agent reports NVIDIA GPU metrics (through NVML) without configuration.
        metrics_agent=(
            "systemctl is-active --quiet google-cloud-ops-agent && return 0\n"
            'curl -fsSLo "$STATE_DIR/add-ops-agent.sh"'
            " https://dl.google.com/cloudagents/add-google-cloud-ops-agent-repo.sh\n"
            'bash "$STATE_DIR/add-ops-agent.sh" --also-install'
        ),
        # A guest shutdown stops a Compute Engine VM: no more compute billing.
        stop_instance="shutdown -h now",
    ),
    "azure": CloudSnippets(
        # An Entra token of the VM's managed identity, exchanged for an ACR refresh token.
        registry_login=(
            f"aad=$({_AZURE_TOKEN})\n"
            'curl -fsS -X POST "https://$REGISTRY/oauth2/exchange" \\\n'
            '    --data "grant_type=access_token&service=$REGISTRY&access_token=$aad" \\\n'
            "    | json_field refresh_token \\\n"
            '    | docker login --username 00000000-0000-0000-0000-000000000000 --password-stdin "$REGISTRY"'
        ),
        # Telegraf publishes GPU utilization as an Azure Monitor custom metric of this VM
        # (Telegraf/nvidia_smi utilization_gpu), the metric the idle alert reads; it signs in with the VM's
        # managed identity, which holds Monitoring Metrics Publisher on the VM.
        metrics_agent=(
            "if ! command -v telegraf >/dev/null; then\n"
            "  curl -fsSL https://repos.influxdata.com/influxdata-archive.key"
            ' | gpg --dearmor --yes -o "$SYSROOT/usr/share/keyrings/influxdata.gpg"\n'
            "  echo 'deb [signed-by=/usr/share/keyrings/influxdata.gpg]"
            " https://repos.influxdata.com/debian stable main'"
            ' >"$SYSROOT/etc/apt/sources.list.d/influxdata.list"\n'
            "  apt-get update -q && apt-get install -yq telegraf\n"
            "fi\n"
            'mkdir -p "$SYSROOT/etc/telegraf"\n'
            "printf '%s\\n' '[agent]' '  interval = \"60s\"' '  omit_hostname = true' '[[inputs.nvidia_smi]]'"
            " '[[outputs.azure_monitor]]' >\"$SYSROOT/etc/telegraf/telegraf.conf\"\n"
            'echo "AZURE_CLIENT_ID=${AZURE_CLIENT_ID:-}" >"$SYSROOT/etc/default/telegraf"\n'
            "systemctl enable telegraf && systemctl restart telegraf"
        ),
        # A shutdown inside the VM leaves it allocated (and billed): deallocate it through ARM instead.
        stop_instance=(
            f"token=$({_AZURE_TOKEN})\n"
            'vm=$(curl -fsS -H Metadata:true "http://169.254.169.254/metadata/instance/compute/resourceId'
            '?api-version=2021-02-01&format=text")\n'
            'curl -fsS -X POST -H "Authorization: Bearer $token" -H "Content-Length: 0" \\\n'
            '    "https://management.azure.com${vm}/deallocate?api-version=2024-07-01" \\\n'
            '    || { log "deallocate failed; powering off instead"; shutdown -h now; }'
        ),
    ),
}

_BODY = r"""
STATE_DIR="${CLOUD_AI_STATE_DIR:-/var/lib/cloud-ai}"
SYSROOT="${CLOUD_AI_SYSROOT:-}"
UNIT_DIR="${CLOUD_AI_UNIT_DIR:-$SYSROOT/etc/systemd/system}"
WATCH_INTERVAL="${CLOUD_AI_WATCH_INTERVAL:-60}"
RETRY_SECONDS="${CLOUD_AI_RETRY_SECONDS:-15}"
CONTAINER=cloud-ai-train

log() { echo "cloud-ai[$NODE_INDEX] $(date -u +%FT%TZ) $*" >&2; }
json_field() { sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p"; }

retry() {
  local attempt
  for attempt in 1 2 3 4 5; do
    "$@" && return 0
    log "$1 failed (attempt $attempt)"; sleep "$RETRY_SECONDS"
  done
  return 1
}

install_units() {
  local self
  self=$(readlink -f "$0")
  [ "$self" = "$STATE_DIR/launch.sh" ] || install -m 0755 "$self" "$STATE_DIR/launch.sh"
  mkdir -p "$UNIT_DIR"
  cat >"$UNIT_DIR/cloud-ai-train.service" <<UNIT
[Unit]
Description=cloud-ai trainer: run the train container until it has exported
Wants=network-online.target
After=network-online.target docker.service
[Service]
Type=oneshot
Environment=CLOUD_AI_STATE_DIR=$STATE_DIR
ExecStart=$STATE_DIR/launch.sh
TimeoutStartSec=infinity
[Install]
WantedBy=multi-user.target
UNIT
  cat >"$UNIT_DIR/cloud-ai-idle.service" <<UNIT
[Unit]
Description=cloud-ai GPU idle watchdog: stop the instance after $IDLE_STOP_MINUTES idle minutes
[Service]
Environment=CLOUD_AI_STATE_DIR=$STATE_DIR
ExecStart=$STATE_DIR/launch.sh watchdog
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable cloud-ai-train.service
  systemctl enable --now cloud-ai-idle.service
}

ensure_gpu_runtime() {
  nvidia-smi -L || { log "no NVIDIA driver on this image"; return 1; }
  command -v docker >/dev/null || { apt-get update -q && apt-get install -yq docker.io; }
  docker info --format '{{json .Runtimes}}' | grep -q nvidia && return 0
  log "installing the NVIDIA container runtime"
  if ! command -v nvidia-ctk >/dev/null; then
    curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey \
      | gpg --dearmor --yes -o "$SYSROOT/usr/share/keyrings/nvidia-container-toolkit.gpg"
    curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \
      | sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit.gpg] https://#' \
      >"$SYSROOT/etc/apt/sources.list.d/nvidia-container-toolkit.list"
    apt-get update -q && apt-get install -yq nvidia-container-toolkit
  fi
  nvidia-ctk runtime configure --runtime=docker
  systemctl restart docker
}

watchdog() {
  local idle=0 busiest
  while true; do
    busiest=$(nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits | sort -n | tail -n 1)
    if [ "${busiest:-0}" -lt "$IDLE_PERCENT" ]; then idle=$((idle + 1)); else idle=0; fi
    if [ "$idle" -ge "$IDLE_STOP_MINUTES" ]; then
      log "GPUs idle (< $IDLE_PERCENT%) for $IDLE_STOP_MINUTES minutes: stopping the instance"
      stop_instance
      return 0
    fi
    sleep "$WATCH_INTERVAL"
  done
}

train() {
  local code=0
  docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
  log "training $MODEL_NAME on $DATASET with $IMAGE"
  docker run --name "$CONTAINER" --rm --gpus all --network host --ipc host --stop-timeout 90 \
    -e MODEL_STORE -e DATASET -e MODEL_NAME -e BACKBONE -e IMAGE_SIZE -e EPOCHS -e TF_CONFIG \
    "${EXTRA_ENV[@]}" "$IMAGE" || code=$?
  case "$code" in
    0) date -u +%FT%TZ >"$STATE_DIR/done"; rm -f "$STATE_DIR/failed"
       log "model exported: stopping the instance"; stop_instance ;;
    75) log "preempted: the next boot resumes from the last checkpoint" ;;
    *) echo "$code" >"$STATE_DIR/failed"
       log "training failed with exit status $code: stopping the instance"; stop_instance; return 1 ;;
  esac
}

main() {
  mkdir -p "$STATE_DIR"
  exec 9>"$STATE_DIR/lock"
  flock -n 9 || { log "another boot run holds the lock"; return 0; }
  exec > >(tee -a "$STATE_DIR/launch.log") 2>&1
  install_units
  if [ -f "$STATE_DIR/done" ]; then
    log "already exported on $(cat "$STATE_DIR/done"): stopping the instance"
    stop_instance
    return 0
  fi
  metrics_agent || log "metrics agent not started; the idle watchdog still runs"
  ensure_gpu_runtime
  retry registry_login
  retry docker pull "$IMAGE"
  train
}

case "${1:-boot}" in
  watchdog) watchdog ;;
  *) main ;;
esac
"""


def startup_script(spec: LaunchSpec) -> str:
    """The bash script node `spec.node_index` runs at every boot (see the module docstring)."""
    snippets = CLOUDS.get(spec.cloud)
    if snippets is None:
        raise ValueError(f"no launch snippets for cloud {spec.cloud!r}: one of {', '.join(CLOUDS)}")
    if "@sha256:" not in spec.image:
        raise ValueError(f"the train image must be pinned by digest (<repo>@sha256:...), got {spec.image!r}")
    workload = spec.workload
    values = {
        "IMAGE": spec.image,
        "REGISTRY": spec.registry,
        "NODE_INDEX": str(spec.node_index),
        "IDLE_STOP_MINUTES": str(spec.idle_stop_minutes),
        "IDLE_PERCENT": str(GPU_IDLE_PERCENT),
    }
    train_env = {
        "MODEL_STORE": spec.store_url,
        "DATASET": workload.dataset,
        "MODEL_NAME": workload.model_name,
        "BACKBONE": workload.backbone,
        "IMAGE_SIZE": str(workload.image_size),
        "EPOCHS": str(workload.epochs),
        "TF_CONFIG": tf_config(spec.worker_addresses, spec.node_index),
    }
    lines = [
        "#!/bin/bash",
        f"# cloud-ai trainer node {spec.node_index} on {spec.cloud}, generated by infra/launch.py.",
        "set -euo pipefail",
        *(f"{key}={shlex.quote(value)}" for key, value in values.items()),
        *(f"export {key}={shlex.quote(value)}" for key, value in train_env.items()),
        *(f"export {key}={shlex.quote(value)}" for key, value in spec.extra_env),
        "EXTRA_ENV=(" + " ".join(f"-e {key}" for key, _ in spec.extra_env) + ")",
        _function("registry_login", snippets.registry_login),
        _function("metrics_agent", snippets.metrics_agent),
        _function("stop_instance", snippets.stop_instance),
    ]
    return "\n".join(lines) + "\n" + _BODY.lstrip("\n")


def _function(name: str, body: str) -> str:
    indented = "\n".join(f"  {line}" if line else line for line in body.splitlines())
    return f"{name}() {{\n{indented}\n}}"
