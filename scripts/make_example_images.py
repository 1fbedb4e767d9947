"""Draws the example dataset in manifests/photos/alice: small distinct face-like JPEGs (run once, committed)."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "manifests" / "photos" / "alice"
SKIN = [(241, 194, 160), (224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 219, 172), (230, 188, 152)]
HAIR = [(40, 26, 13), (106, 78, 66), (183, 143, 81), (220, 200, 130), (150, 50, 30), (20, 20, 20)]
BACK = [(90, 140, 200), (200, 220, 180), (240, 240, 230), (60, 60, 80), (230, 170, 170), (120, 180, 160)]
EYES = [(60, 100, 160), (80, 60, 30), (50, 120, 70), (30, 30, 30)]
CAPTIONS = {
    "alice-01": "alice smiling, blue background",
    "alice-04": "alice with her hair down, studio light",
    "alice-07": "alice looking at the camera, dark background",
}


def face(seed: int) -> Image.Image:
    rng = random.Random(seed)
    image = Image.new("RGB", (128, 128), BACK[seed % len(BACK)])
    draw = ImageDraw.Draw(image)
    hair = HAIR[(seed * 5) % len(HAIR)]
    draw.ellipse((24, 14, 104, 100), fill=hair)  # hair behind the face
    draw.ellipse((34, 26, 94, 108), fill=SKIN[(seed * 7) % len(SKIN)])
    eye = EYES[seed % len(EYES)]
    offset = rng.randint(-3, 3)
    for x in (50, 78):
        draw.ellipse((x - 7, 56 + offset, x + 7, 66 + offset), fill=(255, 255, 255))
        draw.ellipse((x - 3, 58 + offset, x + 3, 64 + offset), fill=eye)
    smile = rng.randint(0, 2)
    box = (50, 78 - smile * 2, 78, 94 + smile * 2)
    draw.arc(box, start=10 + smile * 5, end=170 - smile * 5, fill=(150, 40, 50), width=3)
    if seed % 3 == 0:  # a fringe on some
        draw.rectangle((38, 26, 90, 40), fill=hair)
    return image


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for index in range(1, 13):
        stem = f"alice-{index:02d}"
        face(index).save(OUT / f"{stem}.jpg", quality=80)
        if stem in CAPTIONS:
            (OUT / f"{stem}.txt").write_text(CAPTIONS[stem] + "\n", encoding="utf-8")
    face(99).save(OUT.parent / "alice-extra.png", optimize=True)


if __name__ == "__main__":
    main()
