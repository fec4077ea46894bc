"""The classifier: a Keras Applications backbone (or a small CNN) + pooling + a small dense head.

The model takes float32 images with 0-255 pixel values and normalizes them itself, the way each
backbone expects, so the exported model serves raw pixels and no client needs to know the recipe.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
from keras import layers

from workload.errors import UserError

log = logging.getLogger(__name__)

BACKBONES = ("mobilenet_v2", "efficientnet_b0", "small-cnn")
WEIGHTS_HELP = "imagenet, none, or the path of a weights file for the backbone"


def build_model(
    backbone: str, num_classes: int, image_size: int, weights: str = "imagenet", learning_rate: float = 1e-3
) -> keras.Model:
    """A compiled classifier: backbone -> global pooling -> Dense(256, relu) -> Dropout(0.2) -> softmax."""
    images = keras.Input(shape=(image_size, image_size, 3), dtype="float32", name="images")
    features = _backbone(backbone, image_size, _weights_argument(backbone, weights))(images)
    x = layers.GlobalAveragePooling2D(name="pool")(features)
    x = layers.Dense(256, activation="relu", name="hidden")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    # float32 output even under mixed precision: softmax in float16 loses small probabilities.
    probabilities = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    model = keras.Model(images, probabilities, name=f"{backbone.replace('-', '_')}_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _weights_argument(backbone: str, weights: str) -> str | None:
    if backbone not in BACKBONES:
        raise UserError(f"--backbone {backbone!r} is not allowed: expected one of {', '.join(BACKBONES)}")
    if weights == "none":
        return None
    if weights == "imagenet":
        if backbone == "small-cnn":
            raise UserError(
                "--weights imagenet is not available for --backbone small-cnn: use --weights none"
            )
        return "imagenet"
    if not Path(weights).is_file():
        raise UserError(f"--weights {weights!r} is not allowed: expected {WEIGHTS_HELP} (no such file)")
    if backbone == "small-cnn":
        raise UserError("--weights PATH is not available for --backbone small-cnn: use --weights none")
    return weights


def _backbone(name: str, image_size: int, weights: str | None) -> keras.Model:
    """The feature extractor, with the input normalization its weights were trained with."""
    if name == "small-cnn":
        return _small_cnn(image_size)
    if image_size < 32:
        raise UserError(f"--image-size {image_size} is not allowed for {name}: expected at least 32")
    shape = (image_size, image_size, 3)
    try:
        if name == "mobilenet_v2":
            base = keras.applications.MobileNetV2(input_shape=shape, include_top=False, weights=weights)
            scale = layers.Rescaling(1 / 127.5, offset=-1.0, name="to_minus1_1")  # MobileNetV2 wants [-1, 1]
            return keras.Sequential([keras.Input(shape), scale, base], name="mobilenet_v2")
        # EfficientNet rescales and normalizes 0-255 pixels itself.
        return keras.applications.EfficientNetB0(input_shape=shape, include_top=False, weights=weights)
    except Exception as error:
        if weights == "imagenet" and _is_download_failure(error):
            raise UserError(
                f"--weights imagenet: could not download the ImageNet weights for {name} ({_short(error)}); "
                "this needs internet access to storage.googleapis.com: use --weights none or --weights PATH"
            ) from error
        if weights not in (None, "imagenet"):
            raise UserError(f"--weights {weights!r} does not fit {name}: {_short(error)}") from error
        raise


def _is_download_failure(error: BaseException) -> bool:
    text = f"{type(error).__name__} {error}".lower()
    return any(
        word in text for word in ("url fetch failure", "urlopen", "connection", "resolution", "timed out")
    )


def _short(error: BaseException) -> str:
    return " ".join(str(error).split())[:200]


def _small_cnn(image_size: int) -> keras.Model:
    """Three conv blocks: learns the sample digits in a few CPU epochs.

    He initialization suits the ReLUs and gets training off the ground in the first epoch. No batch
    normalization: on a dataset this small its moving statistics lag the weights, and validation accuracy
    swings by 20-30 points from epoch to epoch.
    """
    if image_size < 16:
        raise UserError(f"--image-size {image_size} is not allowed for small-cnn: expected at least 16")
    return keras.Sequential(
        [
            keras.Input((image_size, image_size, 3)),
            layers.Rescaling(1 / 255.0, name="to_0_1"),
            *_conv_block(32),
            layers.MaxPooling2D(),
            *_conv_block(64),
            layers.MaxPooling2D(),
            *_conv_block(128),
        ],
        name="small_cnn",
    )


def _conv_block(filters: int) -> list[layers.Layer]:
    return [
        layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer="he_normal"),
    ]
