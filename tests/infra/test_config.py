"""Stack config validation: every bad value is refused with its key and what is allowed, before any resource.

Each case is checked twice: through `settings_from` (pure), and by running the Pulumi program on the
AWS dev stack with that one value changed, which must raise the same ConfigError with nothing declared.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pulumi.runtime.mocks import _sync_await
from pulumi.runtime.stack import run_pulumi_func

from infra.config import ConfigError, settings_from
from infra.mocks import install_mocks, read_config, run_program, stack_file


def run_without_result() -> None:
    run_program()


def dev_config() -> dict[str, Any]:
    return copy.deepcopy(read_config(stack_file("aws-dev")))


def with_section(section: str, **values: Any) -> dict[str, Any]:
    config = dev_config()
    config[f"cloud-ai:{section}"] = {**config[f"cloud-ai:{section}"], **values}
    return config


def with_top(key: str, value: Any) -> dict[str, Any]:
    config = dev_config()
    config[key] = value
    return config


def without(key: str) -> dict[str, Any]:
    config = dev_config()
    del config[key]
    return config


BAD = {
    "unknown cloud": (
        with_top("cloud-ai:cloud", "oracle"),
        "cloud-ai:cloud = oracle is not allowed: expected aws | gcp | azure",
    ),
    "GPU-less instance type": (
        with_section("trainer", instanceType="m7i.large"),
        "cloud-ai:trainer.instanceType = m7i.large is not allowed: expected a machine type with an NVIDIA",
    ),
    "unlisted instance type": (
        with_section("trainer", instanceType="g9.huge"),
        "cloud-ai:trainer.instanceType = g9.huge is not allowed: expected a GPU machine type listed in",
    ),
    "zero nodes": (
        with_section("trainer", nodes=0),
        "cloud-ai:trainer.nodes = 0 is not allowed: expected a whole number between 1 and 64",
    ),
    "GPUs over the limit": (
        with_section("trainer", instanceType="g5.12xlarge", nodes=2),
        "cloud-ai:trainer.nodes = 2 is not allowed: expected at most 4 GPUs in all "
        "(cloud-ai:limits.maxGpus); 2 x g5.12xlarge is 8",
    ),
    "malformed email": (
        with_section("alarms", email="oncall-at-example"),
        "cloud-ai:alarms.email = oncall-at-example is not allowed: expected an email address",
    ),
    "negative budget": (
        with_section("alarms", monthlyBudgetUsd=-5),
        "cloud-ai:alarms.monthlyBudgetUsd = -5 is not allowed: expected a number > 0",
    ),
    "public endpoint in prod": (
        {**with_section("endpoint", public=True), "cloud-ai:environment": "prod"},
        "cloud-ai:endpoint.public = true is not allowed: expected false in prod",
    ),
    "missing region": (
        without("aws:region"),
        "aws:region = (missing) is not allowed: expected an AWS region such as us-east-1",
    ),
    "unknown key": (
        with_section("trainer", gpuCount=2),
        "cloud-ai:trainer.gpuCount = 2 is not allowed: expected one of the keys",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_settings_from_refuses(case: str) -> None:
    config, message = BAD[case]

    with pytest.raises(ConfigError) as error:
        settings_from(config, "aws-dev")

    assert str(error.value).startswith(message)


@pytest.mark.parametrize("case", list(BAD))
def test_program_refuses_before_declaring_anything(case: str) -> None:
    config, message = BAD[case]
    mocks = install_mocks("aws-dev", config)

    with pytest.raises(ConfigError) as error:
        _sync_await(run_pulumi_func(run_without_result))

    assert str(error.value).startswith(message)
    assert mocks.declared == []


@pytest.mark.parametrize("stack", ["aws-dev", "aws-prod"])
def test_aws_stack_files_are_valid(stack: str) -> None:
    settings = settings_from(read_config(stack_file(stack)), stack)

    assert settings.cloud == "aws"
    assert settings.location.region == "us-east-1"
    assert settings.trainer.total_gpus <= settings.limits.max_gpus
    assert not settings.endpoint.public


def test_dev_is_one_spot_node_and_prod_two_on_demand_multi_gpu_nodes() -> None:
    dev = settings_from(read_config(stack_file("aws-dev")), "aws-dev")
    prod = settings_from(read_config(stack_file("aws-prod")), "aws-prod")

    assert (dev.environment, dev.trainer.instance_type, dev.trainer.nodes, dev.trainer.spot) == (
        "dev",
        "g5.xlarge",
        1,
        True,
    )
    assert (prod.environment, prod.trainer.nodes, prod.trainer.spot) == ("prod", 2, False)
    assert prod.trainer.gpus_per_node > 1
    assert prod.alarms.monthly_budget_usd > dev.alarms.monthly_budget_usd


def test_numbers_from_the_cli_arrive_as_text_and_are_accepted() -> None:
    settings = settings_from(with_section("trainer", nodes="1", diskGb="300"), "aws-dev")

    assert (settings.trainer.nodes, settings.trainer.disk_gb) == (1, 300)
