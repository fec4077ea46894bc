"""Turn encoded JPEG/PNG bytes into the float pixels the models take, without TensorFlow.

The server and the function predictors both decode here, so the same bytes give the same pixels
(and therefore the same answer) everywhere: decode -> RGB -> resize to the model's H x W -> float32 0-255.
"""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np
from PIL import Image, UnidentifiedImageError

# Far above any real photo, far below what would let one request exhaust memory.
MAX_IMAGE_PIXELS = 50_000_000


class ImageError(ValueError):
    """Bytes that are not a decodable image (the client's fault, answered 400)."""


def decode_base64(text: object) -> bytes:
    """The bytes of a `{"b64": ...}` value: standard or URL-safe alphabet, padding optional."""
    if not isinstance(text, str):
        raise ImageError("b64 must be a string of base64-encoded image bytes")
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ImageError(f"b64 is not valid base64: {error}") from None


def decode_image(data: bytes, height: int, width: int) -> np.ndarray:
    """Encoded image bytes -> float32 [height, width, 3] array of 0-255 pixel values."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise ImageError(f"image of {image.width}x{image.height} pixels is larger than allowed")
            rgb = image.convert("RGB")
            if rgb.size != (width, height):
                rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("cannot decode image: not a JPEG, PNG or other known image format") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageError(f"cannot decode image: {error}") from None
    return np.asarray(rgb, dtype=np.float32)


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a uint8-able [H, W] or [H, W, 3] array: how clients and tests make `b64` payloads."""
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
