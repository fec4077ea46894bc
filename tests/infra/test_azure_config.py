"""Bad Azure stack config: a clear ConfigError from settings_from, and no resource declared by the program."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime.mocks import _sync_await
from pulumi.runtime.stack import run_pulumi_func

from infra.config import ConfigError, settings_from
from infra.mocks import install_mocks, read_config, run_program, stack_file


def azure_config(**changes: Any) -> dict[str, Any]:
    config = read_config(stack_file("azure-dev"))
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


def with_trainer(**values: Any) -> dict[str, Any]:
    base = read_config(stack_file("azure-dev"))
    return azure_config(**{"cloud-ai:trainer": {**base["cloud-ai:trainer"], **values}})


def public_prod() -> dict[str, Any]:
    prod = read_config(stack_file("azure-prod"))
    prod["cloud-ai:endpoint"] = {**prod["cloud-ai:endpoint"], "public": True}
    return prod


BAD = {
    "missing location": (
        azure_config(**{"azure-native:location": None}),
        "azure-native:location = (missing)",
    ),
    "GPU-less size": (
        with_trainer(instanceType="Standard_D4s_v5"),
        "cloud-ai:trainer.instanceType = Standard_D4s_v5 is not allowed",
    ),
    "unknown size": (
        with_trainer(instanceType="Standard_NC4as_T9_v9"),
        "cloud-ai:trainer.instanceType = Standard_NC4as_T9_v9 is not allowed",
    ),
    "public endpoint in prod": (public_prod(), "cloud-ai:endpoint.public = true is not allowed"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_settings_from_names_the_bad_key(case: str) -> None:
    config, message = BAD[case]
    with pytest.raises(ConfigError) as error:
        settings_from(config, "azure-dev")
    assert str(error.value).startswith(message)


def run_without_result() -> None:
    run_program()


@pytest.mark.parametrize("case", list(BAD))
def test_program_refuses_before_declaring_anything(case: str) -> None:
    config, message = BAD[case]
    mocks = install_mocks("azure-dev", config)

    with pytest.raises(ConfigError) as error:
        _sync_await(run_pulumi_func(run_without_result))

    assert str(error.value).startswith(message)
    assert mocks.declared == []


def test_gpu_less_size_error_lists_gpu_sizes() -> None:
    with pytest.raises(ConfigError, match="Standard_NC4as_T4_v3"):
        settings_from(with_trainer(instanceType="Standard_D4s_v5"), "azure-dev")


def test_both_stack_files_are_valid_and_priced_from_the_catalog() -> None:
    dev = settings_from(read_config(stack_file("azure-dev")), "azure-dev")
    prod = settings_from(read_config(stack_file("azure-prod")), "azure-prod")
    assert (dev.trainer.spot, dev.trainer.nodes, dev.trainer.gpus_per_node) == (True, 1, 1)
    assert dev.environment == "dev" and prod.environment == "prod"
    assert (prod.trainer.spot, prod.trainer.nodes, prod.endpoint.public) == (False, 2, False)
    assert dev.trainer.hourly_usd_per_node < prod.trainer.hourly_usd_per_node
