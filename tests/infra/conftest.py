"""Stacks run once per session under the engine-free mocks (infra/mocks), shared by the infra tests.

Assertions on a component's outputs go inside `Output.apply` in `@pulumi.runtime.test` functions that
return the output (STYLE.md); whole-stack facts (resource counts, types, inputs) read `StackRun.resources`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from infra.mocks import StackRun, run_stack

_runs: dict[str, StackRun] = {}


def stack(name: str) -> StackRun:
    """The run of stacks/Pulumi.<name>.yaml, computed once per session."""
    if name not in _runs:
        _runs[name] = run_stack(name)
    return _runs[name]


@pytest.fixture(scope="session")
def run_config() -> Callable[[str, dict[str, Any]], StackRun]:
    """Run the program with an explicit config (not cached): for bad-config and variant cases."""
    return lambda name, config: run_stack(name, config)
