"""The Pulumi program: load the stack's config, deploy it on its cloud, export the outputs."""

import sys
from pathlib import Path

# The Pulumi CLI runs this folder with infra/ itself first on sys.path, where platform.py would shadow
# the standard library's `platform`; the package is imported as `infra.*` from the installed project.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from infra.config import load_settings  # noqa: E402
from infra.platform import deploy  # noqa: E402

deployment = deploy(load_settings())
deployment.outputs.export()
