"""Tolerant readers for resource properties, which arrive as plain data or as pulumi-policy proxies.

Proxies are `Mapping`/`Sequence` but not `dict`/`list`, so every reader checks the abstract types.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def is_true(value: object) -> bool:
    """True for `True` and `"true"` (launch templates carry booleans as strings)."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def mappings(value: object) -> list[Mapping[str, Any]]:
    """The mapping items of a list property (or the single mapping), ignoring anything else."""
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [item for item in value if isinstance(item, Mapping)]
    return []


def strings(value: object) -> list[str]:
    """A string or list of strings as a list; anything else as empty."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return [item for item in value if isinstance(item, str)]
    return []


def nested(props: Mapping[str, Any], *path: str) -> Any:
    """props[a][b]... or None where any step is missing."""
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def document(value: object) -> Mapping[str, Any]:
    """An IAM policy document given as JSON text or as an object; empty when it is neither."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, Mapping) else {}
