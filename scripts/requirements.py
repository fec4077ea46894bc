"""Print the requirements of one of pyproject.toml's extras, with the project's own extras expanded.

The images install their dependencies from these lists (scripts/wheelhouse.sh writes one file per image
flavour), so a dependency layer is rebuilt only when pyproject.toml changes, not on every source edit.

    python scripts/requirements.py serve
    python scripts/requirements.py train --tf-package 'tensorflow[and-cuda]'   # the GPU trainer
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
TF_CPU = re.compile(r"^tensorflow-cpu(?=[\s=<>!~;]|$)")


def expand(project: dict, extra: str) -> list[str]:
    """The base dependencies plus EXTRA's, following `name[other]` references to the project itself."""
    name = project["name"]
    extras = project["optional-dependencies"]
    out: list[str] = list(project.get("dependencies", []))
    pending, seen = [extra], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        if current not in extras:
            sys.exit(f"requirements.py: no extra {current!r} in pyproject.toml (have: {', '.join(extras)})")
        for requirement in extras[current]:
            own = re.fullmatch(rf"{re.escape(name)}\[([\w,\s-]+)\]", requirement)
            if own:
                pending += [e.strip() for e in own.group(1).split(",")]
            elif requirement not in out:
                out.append(requirement)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extra")
    parser.add_argument("--tf-package", help="replace tensorflow-cpu by this distribution, same version")
    args = parser.parse_args()
    requirements = expand(tomllib.loads(PYPROJECT.read_text())["project"], args.extra)
    if args.tf_package:
        requirements = [TF_CPU.sub(args.tf_package, r) for r in requirements]
    print("\n".join(requirements))


if __name__ == "__main__":
    main()
