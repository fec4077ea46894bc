"""`cloud-ai plan` end to end: exit status, failing rules named in JSON, config errors, every format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.rules import RULES
from tests.policy.rulecases import FIXTURES
from workload.cli import main

OVERSPEND = FIXTURES / "stacks" / "Pulumi.gcp-dev-overspend.yaml"
NO_REGION = FIXTURES / "stacks" / "Pulumi.aws-dev-noregion.yaml"
REPO = Path(__file__).resolve().parents[2]


def plan_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["plan", *argv, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def failed_rules(stack: dict[str, Any]) -> set[str]:
    return {r["name"] for r in stack["rules"] if not r["passed"] and r["level"] == "mandatory"}


def test_good_stacks_plan_with_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, plan = plan_json(capsys, "--all")
    assert [s["stack"] for s in plan["stacks"]] == sorted(
        ["aws-dev", "aws-prod", "azure-dev", "azure-prod", "gcp-dev", "gcp-prod"]
    )
    assert {s["stack"]: failed_rules(s) for s in plan["stacks"]} == {
        s["stack"]: set() for s in plan["stacks"]
    }
    assert (code, plan["ok"]) == (0, True)
    for stack in plan["stacks"]:
        assert [r["name"] for r in stack["rules"]] == [r.name for r in RULES]
        assert stack["cost"]["hourlyUsd"] > 0 and stack["cost"]["monthlyBaselineUsd"] > 0
        assert any(r["parents"] for r in stack["resources"]), "resources nest under their components"


def test_a_stack_breaking_mandatory_rules_fails_and_names_them(capsys: pytest.CaptureFixture[str]) -> None:
    code, plan = plan_json(capsys, str(OVERSPEND))
    (stack,) = plan["stacks"]
    assert code == 1 and not plan["ok"]
    assert failed_rules(stack) == {"spot-in-dev", "hourly-cost-limit"}
    cost = {r["name"]: r for r in stack["rules"]}["hourly-cost-limit"]["violations"][0]["message"]
    assert "$0.85/hour > limit $0.50" in cost  # g2-standard-8 on demand, from infra/pricing/gcp.csv


def test_a_config_error_fails_with_its_message(capsys: pytest.CaptureFixture[str]) -> None:
    code, plan = plan_json(capsys, str(NO_REGION), "gcp-dev")
    bad, good = plan["stacks"]
    assert code == 1
    assert bad["error"] == "aws:region = (missing) is not allowed: expected an AWS region such as us-east-1"
    assert bad["rules"] == [] and good["ok"]


def test_an_unknown_stack_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "nowhere-dev"]) == 2
    assert "no stack file" in capsys.readouterr().err


def test_markdown_is_a_pr_comment(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(OVERSPEND), "gcp-prod", "--format", "markdown"]) == 1
    text = capsys.readouterr().out
    assert "| gcp-dev-overspend | ❌ fail | 2 |" in text and "| gcp-prod | ✅ pass | 0 | 1 |" in text
    assert "❌ `hourly-cost-limit` (mandatory)" in text and "⚠️ `spot-in-prod` (advisory)" in text
    assert "recorded 2026-11" in text and "<details><summary>Resources</summary>" in text


def test_the_console_script_prints_a_table() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("cloud-ai")), "plan", "aws-dev"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "aws-dev: PASS" in done.stdout and "idle-stop" in done.stdout and "/month always-on" in done.stdout
    assert "aws:ec2/instance:Instance cloud-ai-aws-dev-trainer-0" in done.stdout
