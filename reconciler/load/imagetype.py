"""Pure: which image format bytes are (png, jpeg or webp: what Novita accepts), by their magic, not a name."""

from __future__ import annotations

from typing import Literal

ImageFormat = Literal["png", "jpeg", "webp"]
FORMATS: tuple[ImageFormat, ...] = ("png", "jpeg", "webp")
HEAD_BYTES = 12  # enough for every signature below


def sniff(head: bytes) -> ImageFormat | None:
    """The format of a file from its first `HEAD_BYTES` bytes; None if not png, jpeg or webp."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def file_extension(fmt: str) -> str:
    """The usual file name extension of a format: `jpeg` → `jpg`."""
    return "jpg" if fmt == "jpeg" else fmt
