"""The applier in process against the simulator: a small project, its state file, and one call that plans and
applies the way `reconciler apply` does (refresh, observe the outputs, plan, `Applier.run`).

The simulator is the real one (`reconciler.sim`) served by uvicorn on a loopback socket in a thread; faults
are injected through its `/_sim/faults` endpoint or its config, and what it was asked is read back from its
request log (`/_sim/requests`). Nothing of the applier is replaced: the tests see its state file, the files
it wrote, its `ApplyResult` and the events it emitted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from reconciler.apply import GENERATION_STALL, TRAINING_STALL, Applier, ApplyOptions, ApplyResult, Run, Watch
from reconciler.apply.polling import PollPolicy
from reconciler.commands.plan_apply import PlanInputs, make_plan
from reconciler.commands.targets import Scope
from reconciler.commands.workspace import Endpoint, Settings, load_desired
from reconciler.desired.hashing import HashCache
from reconciler.desired.resources import Desired
from reconciler.novita import NovitaClient, RetryInfo
from reconciler.observe.facts import OutputFacts
from reconciler.outputs.folders import observe
from reconciler.plan.changes import Plan
from reconciler.sim.config import SimConfig
from reconciler.sim.server import RunningSimulator, running_simulator
from reconciler.state import State
from reconciler.state.file import StateStore, read_state
from tests.manifest_helpers import image_bytes, write

KEY = "sk-apply-inprocess-0c1d2e3f"
# fast polling, and short pauses after an unanswered create (the look-ups of a training name, a resubmit)
FAST_POLL = {
    "training": Watch(PollPolicy.every(0.05), TRAINING_STALL),
    "generation": Watch(PollPolicy.every(0.02), GENERATION_STALL),
    "unanswered_delays": (0.05, 0.1),
}


def plain_generation(name: str, prompt: str, image_num: int = 1) -> str:
    """A txt2img Generation without a LoRA, written to outputs/NAME."""
    return f"""\
apiVersion: reconciler/v1
kind: Generation
metadata: {{name: {name}}}
spec:
  model_name: realisticVisionV51_v51VAE_94301.safetensors
  prompt: {prompt}
  width: 256
  height: 256
  image_num: {image_num}
  seed: 11
  output: ../outputs/{name}
"""


# Two LoRAs on two datasets that share one image (uploaded once), a generation on each, one without a LoRA.
PROJECT: dict[str, str | bytes] = {
    "img/alice/a1.jpg": image_bytes(seed=1),
    "img/alice/a2.jpg": image_bytes(seed=2),
    "img/alice/a3.jpg": image_bytes(seed=3),
    "img/bob/b1.jpg": image_bytes(seed=4),
    "img/bob/b2.jpg": image_bytes(seed=5),
    "m/datasets.yaml": """\
apiVersion: reconciler/v1
kind: Dataset
metadata: {name: alice-photos}
spec:
  images: [../img/alice/*.jpg]
---
apiVersion: reconciler/v1
kind: Dataset
metadata: {name: bob-photos}
spec:
  images: [../img/bob/*.jpg, ../img/alice/a1.jpg]
""",
    "m/models.yaml": """\
apiVersion: reconciler/v1
kind: LoraModel
metadata: {name: alice}
spec:
  dataset: alice-photos
  base_model: v1-5-pruned-emaonly
  expert_setting: {instance_prompt: a photo of ohwx woman, class_prompt: person, max_train_steps: 500}
---
apiVersion: reconciler/v1
kind: LoraModel
metadata: {name: bob}
spec:
  dataset: bob-photos
  base_model: v1-5-pruned-emaonly
  expert_setting: {instance_prompt: a photo of sks man, class_prompt: person, max_train_steps: 500}
""",
    "m/generations.yaml": """\
apiVersion: reconciler/v1
kind: Generation
metadata: {name: alice-portraits}
spec:
  model_name: realisticVisionV51_v51VAE_94301.safetensors
  prompt: a portrait of ohwx woman
  negative_prompt: blurry
  loras: [{model: alice, strength: 0.7}]
  width: 256
  height: 256
  image_num: 3
  seed: 123
  output: ../outputs/alice-portraits
---
apiVersion: reconciler/v1
kind: Generation
metadata: {name: bob-portraits}
spec:
  model_name: realisticVisionV51_v51VAE_94301.safetensors
  prompt: a portrait of sks man
  loras: [{model: bob, strength: 0.6}]
  width: 256
  height: 256
  seed: 7
  output: ../outputs/bob-portraits
"""
    + "---\n"
    + plain_generation("landscape", "a mountain lake at dawn"),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Event:
    name: str
    address: str | None
    message: str
    data: dict[str, Any]


@dataclass
class Recorder:
    """A Reporter that keeps every event; `hook` sees each one as it is emitted (on the event loop)."""

    events: list[Event] = field(default_factory=list)
    hook: Callable[[Event], None] | None = None

    def emit(self, event: str, address: str | None = None, message: str = "", **data: Any) -> None:
        record = Event(event, address, message, data)
        self.events.append(record)
        if self.hook is not None:
            self.hook(record)

    def close(self) -> None:
        pass

    def of(self, name: str, address: str | None = None) -> list[Event]:
        return [e for e in self.events if e.name == name and (address is None or e.address == address)]

    def messages(self, name: str, address: str | None = None) -> list[str]:
        return [e.message for e in self.of(name, address)]


@dataclass
class Planned:
    """A plan with the inputs it was made from (apply needs the same desired resources and outputs)."""

    plan: Plan
    desired: Desired
    outputs: dict[str, OutputFacts]

    def actions(self) -> dict[str, str]:
        return {c.address: c.action for c in self.plan.changes}


@dataclass
class Applied:
    plan: Plan
    result: ApplyResult
    events: Recorder


class World:
    """One project folder and one simulated Novita account."""

    def __init__(self, root: Path, sim: RunningSimulator) -> None:
        self.root = root
        self.sim = sim
        self.base_url = sim.base_url  # where the client goes (a test may put a proxy in front)
        write(root, PROJECT)

    # ---- the project ----------------------------------------------------------------------------------------

    def write(self, files: dict[str, str | bytes]) -> None:
        write(self.root, files)

    def edit(self, relpath: str, old: str, new: str) -> None:
        path = self.root / relpath
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {relpath}"
        path.write_text(text.replace(old, new), encoding="utf-8")

    def settings(self, targets: tuple[str, ...] = (), replace: tuple[str, ...] = ()) -> Settings:
        return Settings(self.root, [self.root / "m"], self.state_path, targets=list(targets), replace=list(replace))

    def desired(self) -> Desired:
        return load_desired(self.settings())[0]

    def outputs(self, desired: Desired) -> dict[str, OutputFacts]:
        """What is on disk now, as apply observes it before running a saved plan."""
        settings = self.settings()
        return observe(desired, self.state(), HashCache(settings.cache_file), self.root)

    def files(self, folder: str) -> dict[str, str]:
        """name -> sha256 of every file in an output folder."""
        path = self.root / folder
        return {p.name: sha256(p) for p in sorted(path.iterdir()) if p.is_file()} if path.is_dir() else {}

    # ---- the state ------------------------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.root / "state/state.json"

    def state(self) -> State:
        return read_state(self.state_path)

    def change_state(self, change: Callable[[State], None]) -> None:
        """Edit the state file as an earlier (killed) apply would have left it."""
        store = StateStore(self.state_path)
        change(store.state)
        store.save()

    # ---- the simulator --------------------------------------------------------------------------------------

    def faults(self, **fields: Any) -> None:
        response = httpx.post(f"{self.sim.base_url}/_sim/faults", json=fields, timeout=10)
        assert response.status_code == 200, response.text

    def requests(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """The simulator's request log, oldest first (optionally one endpoint's)."""
        params = {"endpoint": endpoint} if endpoint else {}
        response = httpx.get(f"{self.sim.base_url}/_sim/requests", params=params, timeout=10)
        assert response.status_code == 200, response.text
        records: list[dict[str, Any]] = response.json()["requests"]
        return records

    def created(self, endpoint: str) -> Counter[str]:
        """Creates the simulator made, whatever it answered (200, dropped, a ghost's error): names or prompts."""
        key = "name" if endpoint == "training-create" else "prompt"
        return Counter(
            str(r["body_summary"].get(key))
            for r in self.requests(endpoint)
            if r["status"] == 200 or r["fault"] == "drop-after" or r["body_summary"].get("task_id")
        )

    def uploaded(self) -> Counter[str]:
        """sha256 of each image body the simulator stored (a 200 answer to an upload PUT), counted."""
        ids = Counter(str(r["body_summary"]["assets_id"]) for r in self.requests("upload") if r["status"] == 200)
        hashes: Counter[str] = Counter()
        for assets_id, n in ids.items():
            asset = self.sim.account.asset(assets_id)
            hashes[asset["sha256"] if asset else f"(forgotten {assets_id})"] += n
        return hashes

    def jump_when_waiting(self, seconds: float) -> Callable[[Applier, Event], None]:
        """An `on_event` hook: the first time the applier reports a training still on its way, the simulator's
        clock jumps `seconds` ahead (a long training, waited for, that ends without the test sleeping)."""
        jumped = []

        def hook(applier: Applier, event: Event) -> None:
            if not jumped and event.name == "task_progress" and str(event.address).startswith("LoraModel/"):
                jumped.append(self.sim.account.advance(seconds))

        return hook

    def training_named(self, task_name: str) -> list[dict[str, Any]]:
        return [t for t in self.sim.account.trainings.values() if t["name"] == task_name]

    # ---- plan and apply -------------------------------------------------------------------------------------

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.base_url, KEY)

    def plan(
        self, targets: tuple[str, ...] = (), replace: tuple[str, ...] = (), offline: bool = False, prune: bool = False
    ) -> Planned:
        """`reconciler plan` (`offline`: `--no-refresh`, the state is trusted as it is; `prune`: `--prune`)."""
        settings = self.settings(targets, replace)
        desired, cache = load_desired(settings)
        endpoint = None if offline else self.endpoint
        scope = Scope(tuple(targets), tuple(replace))
        inputs = PlanInputs(settings, desired, cache, self.state(), endpoint)
        plan, outputs = make_plan(inputs, scope=scope, prune=prune)
        return Planned(plan, desired, outputs)

    def apply(
        self,
        planned: Planned | None = None,
        *,
        targets: tuple[str, ...] = (),
        on_event: Callable[[Applier, Event], None] | None = None,
        on_retry: Callable[[RetryInfo], None] | None = None,
        **options: Any,
    ) -> Applied:
        """Plan (unless given a plan) and apply it; `options` are ApplyOptions fields (fast polling by default)."""
        planned = planned or self.plan(targets, prune=bool(options.get("prune")))
        store = StateStore(self.state_path)
        recorder = Recorder()

        async def quick(seconds: float) -> None:  # the client's back-off between retries
            await asyncio.sleep(0)

        async def go() -> ApplyResult:
            async with NovitaClient(KEY, self.base_url, timeout=10, sleep=quick, on_retry=on_retry) as client:
                run = Run(
                    planned.desired,
                    store,
                    client,
                    recorder,
                    ApplyOptions(**{**FAST_POLL, **options}),
                    self.root,
                    planned.outputs,
                )
                applier = Applier(planned.plan, run)
                if on_event is not None:
                    recorder.hook = lambda event: on_event(applier, event)
                return await applier.run()

        result = asyncio.run(go())
        return Applied(planned.plan, result, recorder)


@contextmanager
def worlds(tmp_path: Path) -> Iterator[Callable[..., World]]:
    """`make(**SimConfig overrides)` -> a World with its own simulator; every simulator stops at the end."""
    with ExitStack() as stack:
        count = 0

        def make(**config: Any) -> World:
            nonlocal count
            count += 1
            settings: dict[str, Any] = {"ipm_txt2img": 0, "ipm_img2img": 0, **config}
            sim = stack.enter_context(running_simulator(SimConfig.fast(**settings), None))
            return World(tmp_path / f"project{count}", sim)

        yield make


def sidecar(world: World, folder: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((world.root / folder / f"{name}.reconciler.json").read_text())
    return data
