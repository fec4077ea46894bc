"""The trainer startup script, run for real under bash with the cloud's tools replaced by fakes on PATH.

Each fake logs its argv (and, for `docker run`, the training environment it received) to calls.log;
the tests read that log to check what a boot did, then boot again to check what a second boot does.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.config import Workload
from infra.launch import CLOUDS, GPU_IDLE_PERCENT, LaunchSpec, startup_script

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
DIGEST = "sha256:" + "ab" * 32
IMAGE = f"{REGISTRY}/cloud-ai-aws-dev@{DIGEST}"
WORKERS = ("10.42.1.10", "10.42.1.11")

FAKES = {
    "docker": """
case "$1" in
  info) if [ -f "$FAKE_DIR/no-nvidia-runtime" ]; then echo '{"runc":{}}'
        else echo '{"nvidia":{},"runc":{}}'; fi ;;
  login) echo "password=$(cat)" >>"$FAKE_DIR/calls.log" ;;
  run) env | grep -E '^(MODEL_STORE|DATASET|MODEL_NAME|BACKBONE|IMAGE_SIZE|EPOCHS|TF_CONFIG)=' | sort \\
         | sed 's/^/  env /' >>"$FAKE_DIR/calls.log"
       exit "$(cat "$FAKE_DIR/train-exit" 2>/dev/null || echo 0)" ;;
esac""",
    "aws": "echo ecr-token-from-instance-role",
    "nvidia-smi": """
case "$1" in
  -L) echo "GPU 0: NVIDIA A10G" ;;
  *) n=$(grep -c '^nvidia-smi --query' "$FAKE_DIR/calls.log")
     sed -n "${n}p" "$FAKE_DIR/utilization" | tr ' ' '\\n' ;;
esac""",
    "curl": """
case "$*" in
  *service-accounts/default/token*) echo '{"access_token":"gcp-token","expires_in":3599}' ;;
  *oauth2/exchange*) echo '{"refresh_token":"acr-refresh-token"}' ;;
  *identity/oauth2/token*) echo '{"access_token":"aad-token","token_type":"Bearer"}' ;;
  *compute/resourceId*) printf /subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/%s vm ;;
esac""",
    "systemctl": "",
    "shutdown": "",
    "apt-get": "",
    "gpg": "",
    "dpkg": "",
    "nvidia-ctk": "",
    "amazon-cloudwatch-agent-ctl": "",
}


@dataclass
class Node:
    """A fake instance: a temp dir with the state dir, unit dir, fakes on PATH and their call log."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def units(self) -> Path:
        return self.root / "units"

    @property
    def sysroot(self) -> Path:
        return self.root / "sysroot"

    def calls(self) -> list[str]:
        log = self.root / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def called(self, prefix: str) -> list[str]:
        return [c for c in self.calls() if c.startswith(prefix)]

    def boot(self, script: str, *args: str) -> subprocess.CompletedProcess[str]:
        path = self.root / "user-data.sh"
        path.write_text(script)
        env = {
            "PATH": f"{self.root / 'bin'}:/usr/bin:/bin",
            "FAKE_DIR": str(self.root),
            "CLOUD_AI_STATE_DIR": str(self.state),
            "CLOUD_AI_UNIT_DIR": str(self.units),
            "CLOUD_AI_SYSROOT": str(self.sysroot),
            "CLOUD_AI_WATCH_INTERVAL": "0",
            "CLOUD_AI_RETRY_SECONDS": "0",
        }
        return subprocess.run(
            ["bash", str(path), *args], env=env, capture_output=True, text=True, timeout=30, check=False
        )

    def train_exits(self, code: int) -> None:
        (self.root / "train-exit").write_text(str(code))


@pytest.fixture
def node(tmp_path: Path) -> Node:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in FAKES.items():
        fake = bin_dir / name
        fake.write_text(f'#!/bin/bash\necho "{name} $*" >>"$FAKE_DIR/calls.log"\n{body}\n')
        fake.chmod(0o755)
    for system_dir in ("etc/apt/sources.list.d", "etc/default", "usr/share/keyrings"):
        (tmp_path / "sysroot" / system_dir).mkdir(parents=True)
    return Node(tmp_path)


def spec(cloud: str = "aws", index: int = 0, workers: tuple[str, ...] = WORKERS, **kw: str) -> LaunchSpec:
    defaults = {"image": IMAGE, "registry": REGISTRY, "store_url": "s3://cloud-ai-models"}
    defaults.update(kw)
    return LaunchSpec(
        cloud=cloud,
        image=defaults["image"],
        registry=defaults["registry"],
        store_url=defaults["store_url"],
        workload=Workload(model_name="flowers-net", dataset="flowers", epochs=3),
        node_index=index,
        worker_addresses=workers,
        idle_stop_minutes=3,
    )


def test_first_boot_logs_in_pulls_by_digest_trains_and_stops(node: Node) -> None:
    result = node.boot(startup_script(spec(index=1)))

    assert result.returncode == 0, result.stderr
    calls = node.calls()
    assert "aws ecr get-login-password --region us-east-1" in calls
    assert f"docker login --username AWS --password-stdin {REGISTRY}" in calls
    assert "password=ecr-token-from-instance-role" in calls
    assert f"docker pull {IMAGE}" in calls
    run = next(c for c in calls if c.startswith("docker run"))
    assert run.startswith("docker run --name cloud-ai-train --rm --gpus all --network host")
    assert run.endswith(IMAGE)
    for name in ("MODEL_STORE", "DATASET", "MODEL_NAME", "BACKBONE", "IMAGE_SIZE", "EPOCHS", "TF_CONFIG"):
        assert f"-e {name} " in run
    env = dict(c.removeprefix("  env ").split("=", 1) for c in calls if c.startswith("  env "))
    assert env["MODEL_STORE"] == "s3://cloud-ai-models"
    assert (env["DATASET"], env["MODEL_NAME"], env["BACKBONE"]) == ("flowers", "flowers-net", "mobilenet_v2")
    assert (env["IMAGE_SIZE"], env["EPOCHS"]) == ("224", "3")
    assert json.loads(env["TF_CONFIG"]) == {
        "cluster": {"worker": ["10.42.1.10:12345", "10.42.1.11:12345"]},
        "task": {"type": "worker", "index": 1},
    }
    assert calls.index(f"docker pull {IMAGE}") < calls.index(run) < calls.index("shutdown -h now")
    assert (node.state / "done").exists()


def test_single_node_gets_an_empty_tf_config(node: Node) -> None:
    node.boot(startup_script(spec(workers=("10.42.1.10",))))

    assert "  env TF_CONFIG=" in node.calls()


def test_boot_installs_itself_as_a_boot_unit_and_starts_the_watchdog(node: Node) -> None:
    node.boot(startup_script(spec()))

    assert (node.state / "launch.sh").read_text() == startup_script(spec())
    train_unit = (node.units / "cloud-ai-train.service").read_text()
    assert f"ExecStart={node.state}/launch.sh\n" in train_unit
    assert "WantedBy=multi-user.target" in train_unit
    idle_unit = (node.units / "cloud-ai-idle.service").read_text()
    assert f"ExecStart={node.state}/launch.sh watchdog" in idle_unit
    assert "systemctl enable cloud-ai-train.service" in node.calls()
    assert "systemctl enable --now cloud-ai-idle.service" in node.calls()


def test_aws_boot_starts_the_cloudwatch_agent_with_gpu_metrics(node: Node) -> None:
    node.boot(startup_script(spec()))

    config_file = node.state / "cwagent.json"
    assert f"amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:{config_file}" in node.calls()
    metrics = json.loads(config_file.read_text())["metrics"]
    assert metrics["namespace"] == "CWAgent"
    assert metrics["aggregation_dimensions"] == [["InstanceId"]]
    assert "utilization_gpu" in metrics["metrics_collected"]["nvidia_gpu"]["measurement"]


def test_second_boot_after_export_does_not_train_again_and_stops(node: Node) -> None:
    script = startup_script(spec())
    node.boot(script)
    first_runs = len(node.called("docker run"))

    result = node.boot(script)

    assert result.returncode == 0, result.stderr
    assert first_runs == 1
    assert len(node.called("docker run")) == 1
    assert len(node.called("shutdown -h now")) == 2
    assert "already exported" in (node.state / "launch.log").read_text()


def test_installed_copy_reruns_from_the_boot_unit(node: Node) -> None:
    node.train_exits(75)
    node.boot(startup_script(spec()))
    node.train_exits(0)

    result = subprocess.run(
        ["bash", str(node.state / "launch.sh")],
        env={
            "PATH": f"{node.root / 'bin'}:/usr/bin:/bin",
            "FAKE_DIR": str(node.root),
            "CLOUD_AI_STATE_DIR": str(node.state),
            "CLOUD_AI_UNIT_DIR": str(node.units),
            "CLOUD_AI_SYSROOT": str(node.sysroot),
            "CLOUD_AI_RETRY_SECONDS": "0",
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert len(node.called("docker run")) == 2
    assert (node.state / "done").exists()


def test_preempted_run_is_retried_on_the_next_boot(node: Node) -> None:
    script = startup_script(spec())
    node.train_exits(75)
    first = node.boot(script)

    assert first.returncode == 0, first.stderr
    assert not (node.state / "done").exists()
    assert node.called("shutdown") == []

    node.train_exits(0)
    second = node.boot(script)

    assert second.returncode == 0, second.stderr
    assert len(node.called("docker run")) == 2
    assert (node.state / "done").exists()
    assert node.called("shutdown") == ["shutdown -h now"]


def test_failed_run_stops_the_instance_and_is_not_marked_done(node: Node) -> None:
    node.train_exits(1)
    result = node.boot(startup_script(spec()))

    assert result.returncode != 0
    assert not (node.state / "done").exists()
    assert (node.state / "failed").read_text().strip() == "1"
    assert node.called("shutdown") == ["shutdown -h now"]


def test_missing_nvidia_runtime_is_installed_before_training(node: Node) -> None:
    (node.root / "no-nvidia-runtime").touch()
    node.boot(startup_script(spec()))

    calls = node.calls()
    configure = calls.index("nvidia-ctk runtime configure --runtime=docker")
    assert calls[configure + 1] == "systemctl restart docker"
    assert configure < calls.index(next(c for c in calls if c.startswith("docker run")))


def test_missing_container_toolkit_is_installed_from_nvidias_repository(node: Node) -> None:
    (node.root / "no-nvidia-runtime").touch()
    toolkit = node.root / "bin" / "nvidia-ctk"
    toolkit.rename(node.root / "nvidia-ctk.package")
    apt = node.root / "bin" / "apt-get"
    apt.write_text(
        apt.read_text()
        + 'if [ "$1" = install ]; then cp "$FAKE_DIR/nvidia-ctk.package" "$(dirname "$0")/nvidia-ctk"; fi\n'
    )
    node.boot(startup_script(spec()))

    sources = node.sysroot / "etc/apt/sources.list.d/nvidia-container-toolkit.list"
    assert "apt-get install -yq nvidia-container-toolkit" in node.calls()
    assert sources.exists()
    assert "nvidia-ctk runtime configure --runtime=docker" in node.calls()
    assert node.called("docker run")


def test_present_nvidia_runtime_is_left_alone(node: Node) -> None:
    node.boot(startup_script(spec()))

    assert node.called("nvidia-ctk") == []


def test_watchdog_stops_after_idle_minutes_in_a_row(node: Node) -> None:
    busy = GPU_IDLE_PERCENT + 40
    samples = ["0 0", "2 0", f"0 {busy}", "0 0", "1 0", "0 3"]  # one line per minute, one value per GPU
    (node.root / "utilization").write_text("\n".join(samples) + "\n")

    result = node.boot(startup_script(spec()), "watchdog")

    assert result.returncode == 0, result.stderr
    # Samples 1-2 idle, 3 busy (resets), 4-6 idle: three idle minutes in a row only at sample 6.
    assert len(node.called("nvidia-smi --query-gpu=utilization.gpu")) == 6
    assert node.called("shutdown") == ["shutdown -h now"]


def test_gcp_logs_in_with_the_service_account_token(node: Node) -> None:
    registry = "us-central1-docker.pkg.dev"
    image = f"{registry}/proj/cloud-ai/train@{DIGEST}"
    result = node.boot(startup_script(spec("gcp", image=image, registry=registry, store_url="gs://b")))

    assert result.returncode == 0, result.stderr
    assert f"docker login --username oauth2accesstoken --password-stdin https://{registry}" in node.calls()
    assert "password=gcp-token" in node.calls()
    assert f"docker pull {image}" in node.calls()
    assert node.called("shutdown") == ["shutdown -h now"]


def test_azure_logs_in_with_the_managed_identity_and_deallocates(node: Node) -> None:
    registry = "cloudaidev.azurecr.io"
    image = f"{registry}/train@{DIGEST}"
    result = node.boot(startup_script(spec("azure", image=image, registry=registry, store_url="az://models")))

    assert result.returncode == 0, result.stderr
    assert "password=acr-refresh-token" in node.calls()
    exchange = next(c for c in node.calls() if "oauth2/exchange" in c)
    assert "access_token=aad-token" in exchange
    deallocate = next(c for c in node.calls() if "/deallocate" in c)
    assert "Authorization: Bearer aad-token" in deallocate
    assert (
        "https://management.azure.com/subscriptions/s/resourceGroups/rg/providers/"
        "Microsoft.Compute/vm/deallocate?api-version=" in deallocate
    )
    assert node.called("shutdown") == []
    telegraf = (node.sysroot / "etc/telegraf/telegraf.conf").read_text()
    assert "[[inputs.nvidia_smi]]" in telegraf and "[[outputs.azure_monitor]]" in telegraf


def test_every_cloud_has_all_three_snippets() -> None:
    assert set(CLOUDS) == {"aws", "gcp", "azure"}
    for snippets in CLOUDS.values():
        assert snippets.registry_login and snippets.metrics_agent and snippets.stop_instance


def test_image_must_be_pinned_by_digest() -> None:
    with pytest.raises(ValueError, match="digest"):
        startup_script(spec(image=f"{REGISTRY}/cloud-ai-aws-dev:latest"))


def test_unknown_cloud_is_refused() -> None:
    with pytest.raises(ValueError, match="oracle"):
        startup_script(spec("oracle"))


def test_script_fits_in_ec2_user_data() -> None:
    eight_nodes = tuple(f"10.42.1.{10 + i}" for i in range(8))
    assert len(startup_script(spec(workers=eight_nodes)).encode()) < 16 * 1024
