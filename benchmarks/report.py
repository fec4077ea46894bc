"""Benchmarks write their results into benchmarks/README.md, each in its own marked section.

A section sits between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; rerunning a benchmark replaces
its section and leaves the others alone, so the README always holds the latest measured numbers.
The raw numbers also go to benchmarks/results/NAME.json for machines.
"""

from __future__ import annotations

import json
import platform
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
RESULTS = HERE / "results"


def machine() -> str:
    """One line naming where the numbers were measured, since they mean nothing without it."""
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, markdown: str, results: dict[str, Any]) -> None:
    """Replace (or append) the README section NAME and store RESULTS as JSON."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    footer = f"_Measured {stamp} on {machine()}._"
    body = f"<!-- bench:{name} -->\n{markdown.strip()}\n\n{footer}\n<!-- /bench:{name} -->"
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.DOTALL)
    text = pattern.sub(lambda _: body, text) if pattern.search(text) else f"{text.rstrip()}\n\n{body}\n"
    README.write_text(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"measured": stamp, "machine": machine(), **results}, indent=2)
    )


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table; floats get three significant decimals."""

    def cell(value: Any) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
