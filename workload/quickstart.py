"""`cloud-ai quickstart` (`make demo`): the whole workload on this machine, no cloud needed.

sample data -> hold a few images out -> train small-cnn -> export to a file:// store -> serve ->
classify the held-out images over HTTP -> print what happened, and stop (or keep serving).
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from workload import cli
from workload.sample_data import write_digits
from workload.serve import BackgroundServer, ServeSettings
from workload.store import ModelStore

MODEL_NAME = "digits"
IMAGE_SIZE = 32
HELD_OUT_PER_CLASS = 3
LEARNING_RATE = 0.002  # small-cnn from scratch on the digits: 0.95+ validation accuracy in 8 CPU epochs


@dataclass(frozen=True)
class HeldOut:
    path: Path
    label: str


def command(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).resolve()
    dataset, store_url = workdir / "digits", f"file://{workdir / 'store'}"
    held_out = prepare_dataset(dataset, workdir / "held-out")
    print(f"1. wrote the sample digits to {dataset} and held {len(held_out)} images out of training")

    train(dataset, store_url, args.epochs)
    store = ModelStore(store_url)
    version = store.latest_version(MODEL_NAME)
    if version is None:
        raise RuntimeError(f"training finished but {store_url} holds no complete version of {MODEL_NAME}")
    metrics = (store.read_metadata(MODEL_NAME, version) or {}).get("metrics", {})
    print(f"2. trained small-cnn: validation accuracy {metrics.get('val_accuracy', float('nan')):.3f}")
    print(f"   model version {version}: {store.root}/models/{MODEL_NAME}/{version}")

    server = BackgroundServer(ServeSettings(store_url, MODEL_NAME, port=args.port, poll_seconds=5.0)).start()
    try:
        print(f"3. serving at {server.url}/v1/models/{MODEL_NAME}")
        correct = classify_over_http(server.url, held_out)
        print(f"4. classified the {len(held_out)} held-out images over HTTP: {correct} right")
        print(f"   ({correct / len(held_out):.0%} accuracy on images the model never saw)")
        print("try it:")
        print(f"   {curl_example(server.url, held_out[0].path)}")
        if args.keep_serving:
            print("serving until Ctrl-C")
            threading.Event().wait()
    finally:
        server.stop()
        print("server stopped")
    return 0


def prepare_dataset(dataset: Path, held_out_dir: Path) -> list[HeldOut]:
    """A fresh sample dataset with the last few images of each class moved aside for the demo."""
    shutil.rmtree(dataset, ignore_errors=True)
    shutil.rmtree(held_out_dir, ignore_errors=True)
    write_digits(dataset, IMAGE_SIZE)
    held_out = []
    for class_dir in sorted(p for p in dataset.iterdir() if p.is_dir()):
        for image in sorted(class_dir.iterdir())[-HELD_OUT_PER_CLASS:]:
            target = held_out_dir / class_dir.name / image.name
            target.parent.mkdir(parents=True, exist_ok=True)
            image.rename(target)
            held_out.append(HeldOut(target, class_dir.name))
    return held_out


def train(dataset: Path, store_url: str, epochs: int) -> None:
    """Train through the CLI's own `train` arguments, so the demo runs exactly what users run."""
    args = cli.build_parser().parse_args(
        [
            "train",
            f"--data={dataset}",
            f"--model-store={store_url}",
            f"--model-name={MODEL_NAME}",
            "--backbone=small-cnn",
            "--weights=none",
            f"--image-size={IMAGE_SIZE}",
            f"--epochs={epochs}",
            f"--learning-rate={LEARNING_RATE}",
        ]
    )
    from workload import train as trainer

    status = trainer.command(args)
    if status != 0:
        raise RuntimeError(f"training stopped with status {status}")


def classify_over_http(url: str, held_out: list[HeldOut]) -> int:
    """POST the held-out images to :classify (as TF Serving b64 examples) and count top-1 hits."""
    examples = [{"image": {"b64": base64.b64encode(item.path.read_bytes()).decode()}} for item in held_out]
    request = urllib.request.Request(
        f"{url}/v1/models/{MODEL_NAME}:classify",
        data=json.dumps({"examples": examples}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        results = json.loads(response.read())["results"]
    return sum(result[0][0] == item.label for result, item in zip(results, held_out, strict=True))


def curl_example(url: str, image: Path) -> str:
    body = '{"examples": [{"image": {"b64": "\'"$(base64 -w0 ' + str(image) + ')"\'"}}]}'
    return f"curl -s -d '{body}' {url}/v1/models/{MODEL_NAME}:classify"
