"""Container image sizes and build times: every target of workload/Dockerfile, built offline.

Builds with scripts/build-images.sh (local debootstrap base, host wheelhouse) and records, per image,
its size against the budget (function images < 500 MB, serve < 2.5 GB) and how long its build took.
Build times depend on what the layer cache holds: run it once warm (the default: a rebuild with no
changes) and with BENCH_IMAGES_COLD=1 (the builder cache and the images are removed first; the host
caches of the base rootfs and the wheelhouse are kept, as they are in CI).
TRAINER_VARIANTS=cpu,gpu (the default) also builds the GPU trainer, whose wheelhouse is about 3 GB.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from benchmarks.report import table, write_section

REPO = Path(__file__).resolve().parent.parent
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
BUDGETS = {"serve": 2.5e9, "function-aws": 500e6, "function-gcp": 500e6, "function-azure": 500e6}
FUNCTIONS_AND_SERVE = ["serve", "function-aws", "function-gcp", "function-azure"]


def docker(*args: str) -> str:
    return subprocess.run([DOCKER, *args], check=True, capture_output=True, text=True).stdout


def build(targets: list[str], variant: str) -> dict[str, float]:
    """Build TARGETS; seconds per target, read from build-images.sh's own report."""
    result = subprocess.run(
        [str(REPO / "scripts/build-images.sh"), *targets],
        cwd=REPO,
        env={**os.environ, "TRAIN_VARIANT": variant},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"build-images.sh failed:\n{result.stderr[-3000:]}")
    return {m[1]: float(m[2]) for m in re.finditer(r"cloud-ai/([\w-]+):\S+ built in (\d+) s", result.stderr)}


def main() -> None:
    cold = os.environ.get("BENCH_IMAGES_COLD") == "1"
    variants = os.environ.get("TRAINER_VARIANTS", "cpu,gpu").split(",")
    subprocess.run([str(REPO / "scripts/ensure-docker.sh")], check=True)
    if cold:
        tags = docker("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=cloud-ai/*")
        images = [t for t in tags.split() if not t.startswith("cloud-ai/base:")]
        if images:
            docker("rmi", "--force", *images)
        docker("builder", "prune", "--all", "--force")

    rows, results = [], {}
    started = time.monotonic()
    for variant in variants:
        targets = ["train", *FUNCTIONS_AND_SERVE] if variant == variants[0] else ["train"]
        seconds = build(targets, variant)
        for target in targets:
            tag = f"cloud-ai/train:{variant}" if target == "train" else f"cloud-ai/{target}:latest"
            size = int(docker("image", "inspect", "--format", "{{.Size}}", tag))
            budget = BUDGETS.get(target)
            verdict = "—" if budget is None else ("within" if size < budget else "OVER")
            limit = "—" if budget is None else f"{budget / 1e6:,.0f} MB"
            rows.append([tag, f"{size / 1e6:,.0f} MB", limit, verdict, f"{seconds.get(target, 0):.0f} s"])
            results[tag] = {"bytes": size, "budget_bytes": budget, "build_seconds": seconds.get(target)}
    total = time.monotonic() - started

    kind = "cold (empty builder cache)" if cold else "warm (layer cache as it was)"
    markdown = (
        "### Container images\n\n"
        f"`make images` / `scripts/build-images.sh`, offline from the local debootstrap base; build {kind}, "
        f"{total:.0f} s in all. Sizes are the unpacked image as `docker image inspect` reports it.\n\n"
        + table(["image", "size", "budget", "", "build"], rows)
    )
    write_section("images", markdown, {"cold": cold, "total_seconds": total, "images": results})
    print(markdown)


if __name__ == "__main__":
    main()
