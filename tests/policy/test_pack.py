"""The policy pack, loaded in its own virtualenv (make policy-venv), registers every rule and enforces it
exactly as `cloud-ai plan` does; pulumi-policy stays out of the main environment."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra.rules import RULES
from infra.rules.facts import facts_from_file
from tests.policy.rulecases import STACKS, load

REPO = Path(__file__).resolve().parents[2]
POLICY_PYTHON = REPO / ".venv-policy" / "bin" / "python"
STACK = "gcp-dev"
# pulumi-policy's marker for a string the engine does not know yet (pulumi_policy.proxy.UNKNOWN_STRING_VALUE).
UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def as_case(resources: list[Any]) -> dict[str, Any]:
    return {
        "stack": STACK,
        "resources": [
            {"type": r.type, "name": r.name, "props": {**r.props, **({"id": r.id} if r.id else {})}}
            for r in resources
        ],
    }


@pytest.fixture(scope="module")
def probe() -> dict[str, Any]:
    assert POLICY_PYTHON.exists(), "the policy pack's virtualenv is missing: run `make policy-venv`"
    cases = [as_case(load(r.name)[0]) for r in RULES]
    cases.append(
        {
            "stack": STACK,
            "resources": [
                {
                    "type": "aws:lambda/functionUrl:FunctionUrl",
                    "name": "fn",
                    "props": {"authorizationType": UNKNOWN_STRING},
                }
            ],
        }
    )
    done = subprocess.run(
        [str(POLICY_PYTHON), str(Path(__file__).with_name("pack_probe.py")), str(REPO / "policy")],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def test_main_environment_has_no_pulumi_policy() -> None:
    assert importlib.util.find_spec("pulumi_policy") is None


def test_pack_registers_every_rule_with_its_level(probe: dict[str, Any]) -> None:
    assert probe["pack"] == "cloud-ai-guardrails"
    registered = {(p["name"], p["kind"], p["level"], p["description"]) for p in probe["policies"]}
    assert registered == {(r.name, r.kind, r.level, r.description) for r in RULES}


def test_pack_reports_what_the_rules_report(probe: dict[str, Any]) -> None:
    """Under the stack file's facts (which the pack reads itself) each fixture gets the same verdicts."""
    facts = facts_from_file(STACKS / f"Pulumi.{STACK}.yaml", STACK)
    for rule, results in zip(RULES, probe["results"], strict=False):
        resources, _ = load(rule.name)
        for checked in RULES:
            expected = [v.message for v in checked.evaluate(resources, facts)]
            assert results[checked.name] == expected, (rule.name, checked.name)


def test_a_value_unknown_during_preview_is_not_guessed(probe: dict[str, Any]) -> None:
    assert probe["results"][-1]["endpoint-authenticated"] == "unknown"
