"""The pull-request and deploy workflows cover every stack file and run the guardrails (actionlint checks
their syntax in CI; here: what they do)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.policy.rulecases import STACKS

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"
STACK_NAMES = {p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in STACKS.glob("Pulumi.*.yaml")}


def workflow(name: str) -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True)  # YAML 1.1 reads the key `on` as a boolean
    return document


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith(action)]


def matrix_stacks(job: dict[str, Any]) -> set[str]:
    return {entry["stack"] for entry in job["strategy"]["matrix"]["include"]}


def test_preview_plans_every_stack_and_previews_each_with_the_policy_pack() -> None:
    preview = workflow("preview.yml")
    assert "pull_request" in preview["on"] and preview["permissions"]["id-token"] == "write"
    plan_job, preview_job = preview["jobs"]["plan"], preview["jobs"]["preview"]
    assert any("cloud-ai plan --all --format markdown" in s.get("run", "") for s in plan_job["steps"])
    assert matrix_stacks(preview_job) == STACK_NAMES
    (pulumi,) = steps_using(preview_job, "pulumi/actions@")
    assert pulumi["with"]["command"] == "preview" and pulumi["with"]["policyPacks"] == "policy"
    for login in ("aws-actions/configure-aws-credentials@", "google-github-actions/auth@", "azure/login@"):
        assert steps_using(preview_job, login), login


def test_up_deploys_every_stack_through_its_environment_dev_first() -> None:
    up, stack = workflow("up.yml"), workflow("up-stack.yml")
    assert up["on"]["push"]["branches"] == ["main"]
    assert matrix_stacks(up["jobs"]["dev"]) | matrix_stacks(up["jobs"]["prod"]) == STACK_NAMES
    assert (
        all(s.endswith("-dev") for s in matrix_stacks(up["jobs"]["dev"]))
        and up["jobs"]["prod"]["needs"] == "dev"
    )
    job = stack["jobs"]["up"]
    assert job["environment"] == "${{ inputs.stack }}" and job["concurrency"]["cancel-in-progress"] is False
    (pulumi,) = steps_using(job, "pulumi/actions@")
    assert pulumi["with"]["command"] == "up" and pulumi["with"]["policyPacks"] == "policy"
