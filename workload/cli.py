"""`cloud-ai`: one console script for the workload (sample-data, train, serve, quickstart) and `plan`.

Each command's arguments are declared here (they are a contract); its work lives in the module named
after it, imported only when that command runs so `cloud-ai plan` never pays for TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from workload.errors import UserError

EXIT_USER_ERROR = 2


def _sample_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample-data", help="write the bundled handwritten digits as an image-folder dataset")
    p.add_argument("directory", help="folder to write <class>/<image>.png into")
    p.set_defaults(module="workload.sample_data")


def _train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train, checkpoint and export a new model version")
    p.add_argument(
        "--data", required=True, help="image-folder dataset URL (path, file://, s3://, gs://, az://)"
    )
    p.add_argument("--model-store", required=True, help="model store URL")
    p.add_argument("--model-name", required=True)
    p.add_argument("--backbone", default="mobilenet_v2", help="mobilenet_v2 | efficientnet_b0 | small-cnn")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--weights", default="imagenet", help="imagenet | none | PATH to a weights file")
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--validation-split", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument(
        "--run-id", default=None, help="checkpoint folder name; default: derived from the arguments"
    )
    p.set_defaults(module="workload.train")


def _serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="TF Serving-compatible REST server")
    p.add_argument("--model-store", required=True)
    p.add_argument("--model-name", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--poll-seconds", type=float, default=30.0, help="how often to look for a new version")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--batch-timeout-ms", type=float, default=5.0, help="longest wait to fill a batch")
    p.add_argument("--max-body-mb", type=float, default=16.0)
    p.add_argument("--top-k", type=int, default=5, help="classes returned by :classify")
    p.set_defaults(module="workload.serve")


def _plan(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="offline plan of stacks: resources, policy verdicts, cost")
    p.add_argument("stacks", nargs="*", help="stack names (aws-dev ...) or stack files")
    p.add_argument("--all", action="store_true", help="every stack file in stacks/")
    p.add_argument("--format", choices=["table", "json", "markdown"], default="table")
    p.set_defaults(module="infra.plan")


def _quickstart(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quickstart", help="sample data -> train -> export -> serve -> classify, on this machine"
    )
    p.add_argument("--workdir", default="quickstart", help="where the dataset and the file:// store go")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--keep-serving", action="store_true", help="keep the server up after the demo")
    p.set_defaults(module="workload.quickstart")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloud-ai", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for declare in (_sample_data, _train, _serve, _plan, _quickstart):
        declare(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; bad input becomes one line on stderr and exit status 2, never a traceback."""
    args = build_parser().parse_args(argv)
    # TensorFlow's C++ INFO lines (MLIR passes, SavedModel loading) bury the output users read.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1" if args.verbose else "2")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        command = importlib.import_module(args.module).command
        return int(command(args))
    except UserError as error:
        print(f"cloud-ai {args.command}: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
