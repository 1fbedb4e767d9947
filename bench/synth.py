"""Generate a synthetic reconciler project under bench/.work/ (never committed).

At scale 1 (the shape of issue #15): 200 datasets x 49 distinct photos (~50 KB each: 25 JPEGs and 24 PNGs,
listed by two globs, `*.jpg` and `*.png`; 9,800 files), 200 LoraModels (one per dataset), 1,000 txt2img
Generations (each using one of our LoRAs; half of them make two images, so 1,500 images on disk), and the
number of foreign trainings to seed the simulator with (500, so the account lists 700). Every count is
multiplied by --scale.

Images are fast to make: a few noise JPEGs and PNGs are encoded once, then each file gets a unique comment
(a JPEG COM segment right after SOI, a PNG tEXt chunk right after IHDR), so every file is a valid image by its
magic bytes and distinct by content.

    python bench/synth.py --scale 0.25 --out bench/.work/p025
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import time
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work"


@dataclass(frozen=True)
class Shape:
    datasets: int
    images_per_dataset: int
    generations: int
    images_per_generation: int
    foreign: int
    image_kb: int = 50
    pngs_per_dataset: int = 0  # of images_per_dataset; the rest are JPEGs (a second glob when both)
    double_generations: int = 0  # of the generations, how many make images_per_generation + 1 images
    generations_per_file: int = 100  # Generation documents per manifest file (1: one file each)
    caption_every: int = 0  # every Nth photo of a dataset has a caption sidecar (x.txt next to x.jpg); 0: none
    distinct_photos: int = 0  # the photos' distinct contents (0: every file its own); half JPEG, half PNG

    @classmethod
    def at(cls, scale: float) -> Shape:
        generations = max(1, round(1000 * scale))
        return cls(
            datasets=max(1, round(200 * scale)),
            images_per_dataset=49,
            generations=generations,
            images_per_generation=1,
            foreign=round(500 * scale),
            pngs_per_dataset=24,
            double_generations=generations // 2,
        )

    @classmethod
    def named(cls, name: str) -> Shape:
        """The shapes of bench_shapes.py: `world` (Shape.at(1)), `issue23` (issue #23's project: the world with
        one manifest file per Generation and a caption sidecar on every third photo) and `photos50k` (the same
        with 1,000 datasets of 50 small photos: 50,000 photo files of 10,000 distinct contents, each content in
        five datasets, so the setup uploads 10,000; 1,000 LoraModels, 1,500 trainings listed)."""
        world = cls.at(1.0)
        if name == "world":
            return world
        issue = replace(world, generations_per_file=1, caption_every=3)
        if name == "issue23":
            return issue
        if name == "photos50k":  # Novita trains on at most 50 images: 1,000 datasets of 50, 10,000 contents
            return replace(
                issue, datasets=1000, images_per_dataset=50, pngs_per_dataset=25, image_kb=4, distinct_photos=10_000
            )
        raise ValueError(f"unknown shape {name!r}: world, issue23, photos50k")

    @property
    def images(self) -> int:
        return self.datasets * self.images_per_dataset

    @property
    def generation_images(self) -> int:
        return self.generations * self.images_per_generation + self.double_generations

    def image_num(self, generation: int) -> int:
        """How many images generation number `generation` makes (the doubles spread evenly)."""
        n, d = self.generations, self.double_generations
        return self.images_per_generation + (generation + 1) * d // n - generation * d // n


def noise_jpeg(size_kb: int, seed: int = 0) -> bytes:
    """A random-noise JPEG of roughly size_kb kilobytes (noise does not compress, so size ~ pixels)."""
    from PIL import Image

    side = 64
    while True:
        img = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3) if seed >= 0 else b"")
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        data = buf.getvalue()
        if len(data) >= size_kb * 1024 * 0.9 or side >= 8192:
            return data
        side = int(side * max(1.05, (size_kb * 1024 / len(data)) ** 0.5))


def noise_png(size_kb: int) -> bytes:
    """A random-noise RGB PNG of roughly size_kb kilobytes (noise does not compress)."""
    from PIL import Image

    side = max(8, int((size_kb * 1024 / 3) ** 0.5))
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def distinct(base: bytes, tag: str) -> bytes:
    """`base` with a comment holding `tag`: a COM segment right after a JPEG's SOI, a tEXt chunk right after a
    PNG's IHDR. Still a valid image, different bytes."""
    payload = tag.encode()
    if base.startswith(b"\x89PNG"):
        body = b"tEXt" + b"Comment\x00" + payload
        chunk = (len(body) - 4).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
        return base[:33] + chunk + base[33:]  # 8 bytes of signature + the 25-byte IHDR chunk
    return base[:2] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + base[2:]


def generate(out: Path, shape: Shape, *, fresh: bool = True) -> dict[str, object]:
    """Write the project into `out` (manifests/, images); returns a summary with the timing."""
    t0 = time.perf_counter()
    if fresh and out.exists():
        shutil.rmtree(out)
    manifests = out / "manifests"
    (manifests / "models").mkdir(parents=True, exist_ok=True)
    jpegs = [noise_jpeg(shape.image_kb) for _ in range(4)]
    pngs = [noise_png(shape.image_kb) for _ in range(4)] if shape.pngs_per_dataset else []
    total_bytes = 0
    jpeg_count = shape.images_per_dataset - shape.pngs_per_dataset
    for d in range(shape.datasets):
        name = f"ds-{d:04d}"
        folder = manifests / "photos" / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(shape.images_per_dataset):
            is_jpeg = i < jpeg_count
            bases, suffix = (jpegs, "jpg") if is_jpeg else (pngs, "png")
            if shape.distinct_photos:  # the same bytes in several datasets (uploaded once, as Novita's are)
                count, nth = (jpeg_count, i) if is_jpeg else (shape.pngs_per_dataset, i - jpeg_count)
                content = (d * count + nth) % (shape.distinct_photos // 2)
                data = distinct(bases[content % len(bases)], f"{suffix}-{content}")
            else:
                data = distinct(bases[(d + i) % len(bases)], f"{name}/{i}")
            (folder / f"img-{i:03d}.{suffix}").write_bytes(data)
            total_bytes += len(data)
            if shape.caption_every and i % shape.caption_every == 0:
                (folder / f"img-{i:03d}.txt").write_text(f"a photo of ohwx{d} person, number {i}\n")
        globs = "".join(
            f"\n    - ../photos/{name}/*.{suffix}"
            for suffix, count in (("jpg", jpeg_count), ("png", shape.pngs_per_dataset))
            if count
        )
        (manifests / "models" / f"{name}.yaml").write_text(
            f"""apiVersion: reconciler/v1
kind: Dataset
metadata:
  name: {name}
spec:
  images:{globs}
---
apiVersion: reconciler/v1
kind: LoraModel
metadata:
  name: model-{d:04d}
spec:
  type: subject
  dataset: {name}
  base_model: v1-5-pruned-emaonly
  width: 512
  height: 512
  expert_setting:
    instance_prompt: a photo of ohwx{d} person
    class_prompt: person
    max_train_steps: 500
    learning_rate: 1e-4
  components:
    - {{name: resize, args: {{width: 512, height: 512}}}}
"""
        )
    per_file = shape.generations_per_file
    for start in range(0, shape.generations, per_file):
        docs = []
        for g in range(start, min(start + per_file, shape.generations)):
            docs.append(
                f"""apiVersion: reconciler/v1
kind: Generation
metadata:
  name: gen-{g:05d}
spec:
  type: txt2img
  model_name: realisticVisionV51_v51VAE_94301.safetensors
  prompt: a photo of ohwx{g % shape.datasets} person, scene {g}
  loras:
    - {{model: model-{g % shape.datasets:04d}, strength: 0.7}}
  width: 256
  height: 256
  image_num: {shape.image_num(g)}
  steps: 20
  seed: {g}
  response_image_type: jpeg
  output: {"../" if per_file == 1 else ""}../outputs/gen-{g:05d}
"""
            )
        stem = f"generations-{start // per_file:03d}" if per_file > 1 else f"generations/gen-{start:05d}"
        (manifests / f"{stem}.yaml").parent.mkdir(exist_ok=True)
        (manifests / f"{stem}.yaml").write_text("---\n".join(docs))
    summary = {**asdict(shape), "images": shape.images, "bytes": total_bytes, "seconds": time.perf_counter() - t0}
    (out / "synth.json").write_text(json.dumps(summary, indent=1))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--out", type=Path, help="Default: bench/.work/project-<scale>")
    args = parser.parse_args()
    out = args.out or WORK / f"project-{args.scale:g}"
    summary = generate(out, Shape.at(args.scale))
    print(
        f"generated {out}: {summary['datasets']} datasets, {summary['images']} images "
        f"({int(summary['bytes']) / 1e6:.0f} MB), {summary['generations']} generations, "
        f"foreign trainings to seed: {summary['foreign']} in {float(summary['seconds']):.1f}s"  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    main()
