"""Bench 10: a project with 2,000 generated images: the plan, and the gallery cold and with nothing changed.

The project is one Generation with a 1,000-member matrix (`seed` × `steps` × `guidance_scale`, 10 × 10 × 10)
and `image_num: 2`: 2,000 PNGs of 512×512 with photo-like noise (~0.5 MB each, so decoding costs what a real
output costs), recorded in the state as applied. Built once under bench/.work/gallery-2000/ and reused.

Targets: `reconciler gallery` <= 10 s cold (no thumbnails, no stat cache) and <= 1 s when nothing changed
(whole process); the 1,000 members plan and render in seconds (a no-op plan, and a first plan from an empty
state). Peer: the same 2,000 thumbnails made by a plain sequential Pillow loop (open, thumbnail, save).

    python bench/bench_gallery.py [--members 1000]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from common import REPO, WORK, cli_env, figure, reconciler, timed

sys.path.insert(0, str(REPO))

MANIFEST = """\
apiVersion: reconciler/v1
kind: Generation
metadata: {{name: sweep}}
spec:
  model_name: realisticVisionV51_v51VAE_94301.safetensors
  prompt: a photo of ohwx woman, studio lighting
  width: 512
  height: 512
  image_num: 2
  output: ../outputs/sweep
  matrix:
    seed: {seeds}
    steps: {steps}
    guidance_scale: {scales}
"""


@dataclass
class GalleryBench:
    images: int
    members: int
    setup_s: float
    noop_plan_s: float
    first_plan_s: float
    cold_s: float
    cold_cached_s: float  # no thumbnails, but the stat cache warm (as right after a plan or an apply)
    warm_s: float
    load: float
    cold_cpu_s: float  # user + system CPU of the cold build, all threads
    peer_s: float
    cold_rss_mb: float


def _axes(members: int) -> tuple[list[int], list[int], list[float]]:
    side = round(members ** (1 / 3))
    return list(range(1, side + 1)), list(range(20, 20 + side)), [5.0 + 0.5 * i for i in range(side)]


def _png_variants(count: int) -> Iterator[bytes]:
    """`count` distinct 512×512 PNGs that decode like photos: a few noise images, each copy with its own
    text chunk (distinct bytes and hash, the same pixels)."""
    from PIL import Image

    bases = []
    for k in range(8):
        noise = Image.effect_noise((512, 512), 40 + k * 5)
        rgb = Image.merge("RGB", (noise, noise.rotate(90), noise.rotate(180)))
        buffer = io.BytesIO()
        rgb.save(buffer, "PNG", compress_level=1)
        bases.append(buffer.getvalue())
    for i in range(count):
        data = bases[i % len(bases)]
        payload = b"Comment\x00" + f"bench image {i}".encode()
        chunk = struct.pack(">I", len(payload)) + b"tEXt" + payload
        chunk += struct.pack(">I", zlib.crc32(b"tEXt" + payload) & 0xFFFFFFFF)
        yield data[:33] + chunk + data[33:]  # after the signature and IHDR


def build_project(members: int) -> tuple[Path, float]:
    """The applied project (manifest, images on disk, state recording them); built once."""
    root = WORK / f"gallery-{members}"
    done = root / "built"
    if done.is_file():
        return root, float(done.read_text())
    t0 = time.perf_counter()
    shutil.rmtree(root, ignore_errors=True)
    (root / "manifests").mkdir(parents=True)
    seeds, steps, scales = _axes(members)
    (root / "manifests/sweep.yaml").write_text(MANIFEST.format(seeds=seeds, steps=steps, scales=scales))

    from reconciler.desired.hashing import HashCache, sha256_file
    from reconciler.desired.resources import build_desired
    from reconciler.files import display_path
    from reconciler.load import load_manifests
    from reconciler.outputs.folders import image_path
    from reconciler.state import FileRecord, GenerationEntry
    from reconciler.state.file import StateStore
    from reconciler.status import Status

    desired = build_desired(load_manifests([root / "manifests"], root), HashCache(None), root)
    pngs = _png_variants(2 * len(desired.generations))
    store = StateStore(root / "state/state.json")
    for gen in desired.generations.values():
        files = []
        for index in range(gen.image_num):
            path = image_path(gen, index, "png")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(next(pngs))
            files.append(FileRecord(path=display_path(path, root), sha256=sha256_file(path)))
        identity = gen.identity({})
        assert identity is not None
        store.state.put(GenerationEntry.of(gen, identity, {}, Status.SUCCEEDED, files=files, task_id="bench"))
    store.save()
    seconds = time.perf_counter() - t0
    done.write_text(f"{seconds:.1f}")
    return root, seconds


def peer_thumbnails(root: Path) -> float:
    """A plain sequential Pillow loop over the same images: open, thumbnail, save as JPEG."""
    from PIL import Image

    out = Path(tempfile.mkdtemp(prefix="peer-thumbs-"))
    t0 = time.perf_counter()
    for i, path in enumerate(sorted((root / "outputs").rglob("*.png"))):
        with Image.open(path) as image:
            image.thumbnail((384, 384))
            image.convert("RGB").save(out / f"{i}.jpg", "JPEG", quality=82)
    seconds = time.perf_counter() - t0
    shutil.rmtree(out)
    return seconds


def measure(members: int = 1000) -> GalleryBench:
    root, setup = build_project(members)
    env = cli_env(None)
    noop = timed(reconciler("plan", "--no-refresh", "--detailed-exitcode"), root, env)
    assert noop.returncode == 0, noop.stdout[-2000:] + noop.stderr[-2000:]
    noop = timed(reconciler("plan", "--no-refresh", "--detailed-exitcode"), root, env)  # warm stat cache
    first = timed(reconciler("plan", "--no-refresh", "--state", "state/empty.json"), root, env)
    assert first.returncode == 0 and f"matrix, {members} members: {members} to create" in first.stdout, first.stderr
    shutil.rmtree(root / "gallery", ignore_errors=True)
    (root / "state/.state.hashcache.json").unlink(missing_ok=True)
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cold = timed(reconciler("gallery"), root, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cold_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cold.returncode == 0, cold.stderr
    shutil.rmtree(root / "gallery")
    cold_cached = timed(reconciler("gallery"), root, env)  # the stat cache the first build left
    warm = timed(reconciler("gallery"), root, env)
    assert warm.returncode == 0 and "new thumbnail" not in warm.stdout, warm.stdout
    images = sum(1 for _ in (root / "outputs").rglob("*.png"))
    return GalleryBench(
        images, members, setup, noop.seconds, first.seconds, cold.seconds, cold_cached.seconds, warm.seconds,
        load, cold_cpu, peer_thumbnails(root), cold.max_rss_mb,
    )  # fmt: skip


def report(r: GalleryBench) -> bool:
    print(
        f"Bench 10: {r.images} generated images in a {r.members}-member matrix (setup, once: {r.setup_s:.0f} s; "
        f"load average {r.load:.1f} on {os.cpu_count()} cores when it started)"
    )
    ok_cold = r.cold_s <= 10
    ok_warm = r.warm_s <= 1
    ok_plan = r.noop_plan_s <= 5 and r.first_plan_s <= 5
    figure("gallery, cold (no thumbnails, no stat cache)", f"{r.cold_s:.2f} s", "<= 10 s", ok_cold)
    figure("  its CPU time (user + system, all threads)", f"{r.cold_cpu_s:.2f} s", f"{os.cpu_count()} cores", None)
    figure("gallery, no thumbnails (stat cache warm)", f"{r.cold_cached_s:.2f} s", "(after apply)", None)
    figure("gallery, nothing changed", f"{r.warm_s:.2f} s", "<= 1 s", ok_warm)
    figure("  peer: sequential Pillow thumbnails", f"{r.peer_s:.2f} s", "(same images)", None)
    figure("gallery, cold: peak RSS", f"{r.cold_rss_mb:.0f} MB", "", None)
    figure(f"plan, no-op, {r.members} members (--no-refresh)", f"{r.noop_plan_s:.2f} s", "<= 5 s", r.noop_plan_s <= 5)
    figure(f"plan, first, {r.members} members to create", f"{r.first_plan_s:.2f} s", "<= 5 s", r.first_plan_s <= 5)
    return ok_cold and ok_warm and ok_plan


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=1000)
    args = parser.parse_args()
    sys.exit(0 if report(measure(args.members)) else 1)


if __name__ == "__main__":
    main()
