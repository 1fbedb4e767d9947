"""Draw a simulated output image: a colour and a caption that tell outputs apart. Pure and deterministic."""

from __future__ import annotations

import functools
import hashlib
import io
import textwrap
from typing import Any

from PIL import Image, ImageDraw, ImageFont

FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def _colour(key: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(key.encode()).digest()
    return digest[0], digest[1], digest[2]


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size)


def caption_lines(request: dict[str, Any], seed: int, index: int) -> list[str]:
    """The text written on an output: prompt (wrapped), seed, LoRAs with strengths, and the image index."""
    lines = textwrap.wrap(request["prompt"], width=40)[:8] or [""]
    lines.append(f"seed {seed}  image {index + 1}/{request['image_num']}")
    for lora in request.get("loras") or []:
        lines.append(f"lora {lora['model_name']} @ {lora['strength']:g}")
    lines.append(f"{request['kind']} {request['model_name']}")
    return lines


def render(request: dict[str, Any], seed: int, index: int) -> bytes:
    """The bytes of output `index` of a task: exactly width x height, in the task's image type.

    Same request + same seed + same index -> identical bytes.
    """
    width, height = request["width"], request["height"]
    loras = ",".join(f"{x['model_name']}:{x['strength']}" for x in request.get("loras") or [])
    key = f"{request['prompt']}|{seed}|{loras}|{index}|{request.get('input_sha_prefix', '')}"
    background = _colour(key)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    ink = (0, 0, 0) if sum(background) > 380 else (255, 255, 255)
    size = max(10, min(width, height) // 28)
    font = _font(size)
    band = max(4, height // 40)
    draw.rectangle((0, 0, width, band), fill=_colour(f"{seed}"))  # a strip that changes with the seed alone
    y = band + size // 2
    for line in caption_lines(request, seed, index):
        if y + size > height:
            break
        draw.text((size // 2, y), line, fill=ink, font=font)
        y += int(size * 1.3)
    out = io.BytesIO()
    fmt = FORMATS[request["image_type"]]
    if fmt == "PNG":
        image.save(out, fmt, compress_level=1)
    elif fmt == "JPEG":
        image.save(out, fmt, quality=85)
    else:
        image.save(out, fmt, quality=80, method=0)
    return out.getvalue()
