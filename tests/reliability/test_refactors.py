"""Pay once per request, as a property: random sequences of refactors (renames, moved output folders, a renamed
LoraModel) and edits (prompts from a small set, so reverts happen; random and fixed seeds; twins with the same
request), each applied through the real CLI against the simulator. After every apply the plan is empty; a step of
refactors only pays for nothing; and every image hash ever written is still in the project at the end (current
or history)."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.sim.config import SimConfig
from reconciler.sim.server import running_simulator
from tests.e2e.harness import submissions
from tests.reliability.cli_inprocess import run_main
from tests.reliability.projectgen import jpeg
from tests.reliability.test_convergence import environment

pytestmark = pytest.mark.slow

HEAD = (
    "apiVersion: reconciler/v1\nkind: Dataset\nmetadata: {{name: photos}}\nspec:\n  images: [photos/a.jpg, "
    "photos/b.jpg]\n---\napiVersion: reconciler/v1\nkind: LoraModel\nmetadata: {{name: {model}}}\nspec:\n"
    "  dataset: photos\n  base_model: v1-5-pruned-emaonly\n  expert_setting:\n    instance_prompt: a photo of ohwx\n"
    "    class_prompt: person\n"
)
GENERATION = (
    "apiVersion: reconciler/v1\nkind: Generation\nmetadata: {{name: {name}}}\nspec:\n"
    "  model_name: realisticVisionV51_v51VAE_94301.safetensors\n  prompt: {prompt}\n"
    "  loras: [{{model: {model}, strength: 0.7}}]\n  width: 128\n  height: 128\n  seed: {seed}\n"
    "  output: ../outputs/{output}\n"
)
REFACTORS = ("rename", "move", "rename_model")
STEPS = st.one_of(
    st.tuples(st.just("rename"), st.integers(0, 2), st.integers(0, 9)),
    st.tuples(st.just("move"), st.integers(0, 2), st.integers(0, 9)),
    st.tuples(st.just("rename_model"), st.just(0), st.integers(0, 9)),
    st.tuples(st.just("prompt"), st.integers(0, 2), st.sampled_from(["a cat", "a dog"])),
    st.tuples(st.just("seed"), st.integers(0, 2), st.sampled_from([-1, 3])),
    st.tuples(st.just("twin"), st.integers(0, 2), st.just(0)),
)


class World:
    """Three generations as data (slot -> [name, prompt, seed, output]); twins copy another slot's request."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.model = "face"
        self.gens = {0: ["g0", "a cat", 3, "g0"], 1: ["g1", "a dog", -1, "g1"], 2: ["g2", "a cat", 3, "g2"]}
        photos = root / "manifests" / "photos"
        photos.mkdir(parents=True)
        (photos / "a.jpg").write_bytes(jpeg(1))
        (photos / "b.jpg").write_bytes(jpeg(2))

    def edit(self, kind: str, slot: int, value: object) -> None:
        gen = self.gens[slot]
        taken = {g[0] for g in self.gens.values()} | {g[3] for g in self.gens.values()}
        if kind == "rename" and f"n{slot}{value}" not in taken:
            gen[0] = f"n{slot}{value}"
        elif kind == "move" and f"o{slot}{value}" not in taken:
            gen[3] = f"o{slot}{value}"
        elif kind == "rename_model":
            self.model = f"face{value}"
        elif kind == "prompt":
            gen[1] = str(value)
        elif kind == "seed":
            gen[2] = int(value)  # type: ignore[call-overload]
        elif kind == "twin":
            other = self.gens[(slot + 1) % 3]
            gen[1], gen[2] = other[1], other[2]

    def write(self) -> None:
        docs = [HEAD.format(model=self.model)]
        docs += [
            GENERATION.format(name=n, prompt=p, seed=s, output=o, model=self.model) for n, p, s, o in self.gens.values()
        ]
        (self.root / "manifests" / "project.yaml").write_text("---\n".join(docs))

    def hashes(self) -> set[str]:
        return {
            hashlib.sha256(p.read_bytes()).hexdigest() for p in (self.root / "outputs").rglob("*.png") if p.is_file()
        }


STATS = {"examples": 0, "applies": 0, "refactor_steps": 0, "images": 0}


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(steps=st.lists(st.lists(STEPS, min_size=1, max_size=3), min_size=1, max_size=5))
def _refactor_sequences(steps: list[list[tuple[str, int, object]]]) -> None:
    config = SimConfig.fast(ipm_txt2img=0, ipm_img2img=0)
    with tempfile.TemporaryDirectory() as folder, running_simulator(config, None) as sim:
        root = Path(folder)
        world = World(root)

        def paid_since(mark: int) -> tuple[int, int, int]:
            log = httpx.get(f"{sim.base_url}/_sim/requests", params={"since": mark}, timeout=10).json()
            counts = submissions(log["requests"])
            return tuple(sum(counts[k].values()) for k in ("trainings", "generations", "uploads"))  # type: ignore[return-value]

        def mark() -> int:
            return int(httpx.get(f"{sim.base_url}/_sim/requests", params={"since": 0}, timeout=10).json()["next"])

        with environment(sim.base_url):
            ever: set[str] = set()

            def apply() -> None:
                STATS["applies"] += 1
                code, out, err = run_main(["apply", "--auto-approve", "--poll-interval", "0.02"], root)
                assert code == 0, out + err
                code, out, err = run_main(["plan", "--detailed-exitcode"], root)
                assert code == 0, "the plan right after an apply must be empty:\n" + out + err
                ever.update(world.hashes())

            world.write()
            apply()
            for edits in steps:
                before = mark()
                for kind, slot, value in edits:
                    world.edit(kind, slot, value)
                world.write()
                apply()
                if all(kind in REFACTORS for kind, _, _ in edits):
                    STATS["refactor_steps"] += 1
                    assert paid_since(before) == (0, 0, 0), f"refactors {edits} paid"
            assert ever <= world.hashes(), "an image written earlier is gone"
            STATS["images"] += len(ever)
    STATS["examples"] += 1


def test_refactors_never_pay_again_and_lose_nothing(figure: Callable[[str], None]) -> None:
    """Random sequences of refactors and edits (hypothesis), each checked inside; the figure says how many ran."""
    _refactor_sequences()
    assert STATS["examples"] > 0 and STATS["refactor_steps"] > 0, STATS
    figure(
        f"refactors: {STATS['examples']} random sequences, {STATS['applies']} applies, "
        f"{STATS['refactor_steps']} refactor-only steps all free, {STATS['images']} images all kept, "
        "every plan after an apply empty"
    )
