"""One simulated Novita account: assets, trainings, image tasks, rate windows and the request log.

Statuses are computed from the injected clock at read time (created + phase durations stored per task),
so a restarted simulator with the same data folder continues where it stopped. No HTTP here.
"""

from __future__ import annotations

import collections
import hashlib
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from reconciler.sim.config import DEFAULT_BALANCE, SimConfig
from reconciler.sim.images import render
from reconciler.sim.store import Store
from reconciler.sim.validation import BadRequest

Clock = Callable[[], float]
SAVE_INTERVAL = 0.5  # seconds of real time between two writes of account.json caused by image tasks
REQUEST_LOG_CAP = 200_000
IPM_WINDOW = 60.0
FAILURE_REASONS = (
    "TASK_FAILED: inference worker ran out of memory",
    "TASK_FAILED: model load failed",
    "TASK_FAILED: internal error, please retry",
)


def key_hint(key: str) -> str:
    """A stable, non-reversible label for an API key in logs: `k:` + 8 hex of its sha256 ("" if none)."""
    return f"k:{hashlib.sha256(key.encode()).hexdigest()[:8]}" if key else ""


class Account:
    """The account's data and state machines. Thread-safe: every public method holds one lock."""

    def __init__(self, config: SimConfig, store: Store | None = None, clock: Clock | None = None) -> None:
        self.config = config
        self.faults = config.faults
        self.store = store
        self._clock = clock or time.time
        self._lock = threading.RLock()
        self.clock_offset = 0.0
        self.assets: dict[str, dict[str, Any]] = {}
        self.trainings: dict[str, dict[str, Any]] = {}
        self.generations: dict[str, dict[str, Any]] = {}
        self.blobs: dict[str, bytes] = {}  # in-memory mode: uploaded assets and rendered outputs
        self.request_log: list[dict[str, Any]] = []
        self._ipm: dict[tuple[str, str], collections.deque[tuple[float, int]]] = {}
        self._rps: dict[str, collections.deque[float]] = {}
        self._order = 0  # insertion counter: ties of created_at in listings
        self._last_save = 0.0
        self._dirty = False
        self._timer_armed = False
        self.base_seed = (
            config.random_seed if config.random_seed is not None else random.SystemRandom().randrange(2**32)
        )
        self.balance = DEFAULT_BALANCE  # 1/10,000 USD
        self.spent = 0
        boots = 0
        loaded = store.load() if store else None
        if loaded:
            self._restore(loaded)
            boots = int(loaded.get("boots", 0)) + 1
        else:
            self.secret = random.Random(f"secret/{self.base_seed}").getrandbits(128).to_bytes(16, "big").hex()
        self.boots = boots
        if config.balance is not None:
            self.balance = config.balance
        self.rng = random.Random(f"{self.base_seed}/{boots}")
        if not loaded and config.seed_foreign_tasks:
            self.seed_foreign(config.seed_foreign_tasks, self.base_seed)
        self.save()

    # ---- time and persistence -------------------------------------------------------------------------------

    def now(self) -> float:
        """The simulator's time: the injected clock plus any offset set through POST /_sim/clock."""
        return self._clock() + self.clock_offset

    def advance(self, seconds: float) -> float:
        with self._lock:
            self.clock_offset += seconds
            self.save()
            return self.now()

    def _restore(self, data: dict[str, Any]) -> None:
        self.secret = data["secret"]
        self.clock_offset = float(data.get("clock_offset", 0.0))
        self.assets = data.get("assets", {})
        self.trainings = data.get("trainings", {})
        self.generations = data.get("generations", {})
        self._order = int(data.get("order", 0))
        self.balance = int(data.get("balance", DEFAULT_BALANCE))
        self.spent = int(data.get("spent", 0))

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": 1,
            "boots": getattr(self, "boots", 0),
            "secret": self.secret,
            "clock_offset": self.clock_offset,
            "order": self._order,
            "assets": self.assets,
            "trainings": self.trainings,
            "generations": self.generations,
            "balance": self.balance,
            "spent": self.spent,
        }

    def save(self) -> None:
        """Write account.json now (no-op in memory mode)."""
        with self._lock:
            if self.store:
                self.store.save(self.snapshot())
            self._dirty = False
            self._last_save = time.monotonic()

    def save_soon(self) -> bool:
        """Save now unless a save happened less than SAVE_INTERVAL ago; True if the caller must flush() later."""
        with self._lock:
            if not self.store:
                return False
            if time.monotonic() - self._last_save >= SAVE_INTERVAL:
                self.save()
                return False
            needs_timer = not self._timer_armed
            self._dirty = self._timer_armed = True
            return needs_timer

    def flush(self) -> None:
        with self._lock:
            self._timer_armed = False
            if self._dirty:
                self.save()

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _next_order(self) -> int:
        self._order += 1
        return self._order

    # ---- request log and rate windows -----------------------------------------------------------------------

    def log_request(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.request_log.append(record)
            if len(self.request_log) > REQUEST_LOG_CAP:
                del self.request_log[: REQUEST_LOG_CAP // 10]
            if self.store:
                self.store.append_request(record)

    def ipm_check(self, key: str, api: str, images: int) -> float | None:
        """Count `images` against the key's per-minute budget for `api`; seconds to wait if over, else None."""
        limit = self.config.ipm_txt2img if api == "txt2img" else self.config.ipm_img2img
        if limit <= 0:
            return None
        with self._lock:
            now = self.now()
            window = self._ipm.setdefault((key, api), collections.deque())
            while window and window[0][0] <= now - IPM_WINDOW:
                window.popleft()
            used = sum(n for _, n in window)
            if used + images > limit:
                if images > limit or not window:
                    return IPM_WINDOW
                # the earliest moment when enough old images have left the window
                freed, wait = used, IPM_WINDOW
                for ts, n in window:
                    freed -= n
                    if freed + images <= limit:
                        wait = ts + IPM_WINDOW - now
                        break
                return max(wait, 0.001)
            window.append((now, images))
            return None

    def rps_check(self, key: str) -> bool:
        """True if the key may make one more request this second (always true when rps_limit is 0)."""
        if self.config.rps_limit <= 0:
            return True
        with self._lock:
            now = self.now()
            window = self._rps.setdefault(key, collections.deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= self.config.rps_limit:
                return False
            window.append(now)
            return True

    def roll(self, rate: float) -> bool:
        """One seeded coin toss with probability `rate`."""
        with self._lock:
            return rate > 0 and self.rng.random() < rate

    def uniform(self, low: float, high: float) -> float:
        with self._lock:
            return self.rng.uniform(low, high)

    # ---- assets ---------------------------------------------------------------------------------------------

    def create_asset(self, ext: str) -> dict[str, Any]:
        with self._lock:
            assets_id = f"{self.rng.getrandbits(128):032x}"
            asset = {
                "assets_id": assets_id,
                "ext": ext,
                "created": self.now(),
                "uploaded": False,
                "size": 0,
                "sha256": "",
                "expire_early": self.roll(self.faults.upload_expire),
            }
            self.assets[assets_id] = asset
            self._dirty = True  # persisted by the caller's save_soon(): tickets are cheap, rewrites are not
            return dict(asset)

    def asset(self, assets_id: str) -> dict[str, Any] | None:
        with self._lock:
            asset = self.assets.get(assets_id)
            return dict(asset) if asset else None

    def store_upload(self, assets_id: str, data: bytes) -> None:
        with self._lock:
            asset = self.assets[assets_id]
            name = f"{assets_id}.{asset['ext']}"
            if self.store:
                self.store.write_asset(name, data)
            else:
                self.blobs[f"assets/{name}"] = data
            asset.update(uploaded=True, size=len(data), sha256=hashlib.sha256(data).hexdigest())
            self._dirty = True

    def asset_bytes(self, assets_id: str) -> bytes | None:
        with self._lock:
            asset = self.assets.get(assets_id)
            if not asset or not asset["uploaded"]:
                return None
            name = f"{assets_id}.{asset['ext']}"
            return self.store.read_asset(name) if self.store else self.blobs.get(f"assets/{name}")

    # ---- billing --------------------------------------------------------------------------------------------

    def _charge(self, what: str, units: int) -> None:
        """Take the price of `units` of `what` from the balance, or refuse (nothing is created)."""
        cost = self.config.prices.get(what, 0) * units
        if cost > self.balance:
            raise BadRequest(
                f"insufficient balance: this task costs {cost} and {self.balance} is available (1/10,000 USD)",
                "BILLING_BALANCE_NOT_ENOUGH",
            )
        self.balance -= cost
        self.spent += cost

    def balance_view(self) -> dict[str, str]:
        with self._lock:
            return {
                "availableBalance": str(self.balance),
                "cashBalance": str(self.balance),
                "creditLimit": "0",
                "pendingCharges": "0",
                "outstandingInvoices": "0",
            }

    def top_up(self, amount: int | None = None, set_to: int | None = None) -> int:
        with self._lock:
            if set_to is not None:
                self.balance = set_to
            if amount is not None:
                self.balance += amount
            self.save()
            return self.balance

    # ---- trainings ------------------------------------------------------------------------------------------

    def create_training(self, kind: str, spec: dict[str, Any]) -> str:
        """Create a training from a validated spec; BadRequest naming an unknown or never-uploaded assets_id."""
        with self._lock:
            for i, assets_id in enumerate(spec["assets_ids"]):
                asset = self.assets.get(assets_id)
                if asset is None or not asset["uploaded"]:
                    state = "unknown" if asset is None else "never uploaded"
                    raise BadRequest(f'image_dataset_items[{i}].assets_id: {state} assets_id "{assets_id}"')
            if self.roll(self.faults.asset_forget):
                forgotten = spec["assets_ids"][0]
                self.assets.pop(forgotten, None)
                self.save()
                raise BadRequest(f'image_dataset_items[0].assets_id: unknown assets_id "{forgotten}"')
            self._charge(kind, 1)
            outcome = "SUCCESS"
            name = spec["name"]
            if self.faults.training_fail_pattern and re.search(self.faults.training_fail_pattern, name):
                outcome = "FAILED"
            elif self.faults.training_cancel_pattern and re.search(self.faults.training_cancel_pattern, name):
                outcome = "CANCELED"
            elif self.roll(self.faults.training_fail):
                outcome = "FAILED"
            elif self.roll(self.faults.training_cancel):
                outcome = "CANCELED"
            task_id = self._new_id()
            created = self.now()
            q, t = self.config.training_queue_seconds, self.config.training_seconds
            self.trainings[task_id] = {
                "task_id": task_id,
                "kind": kind,
                "name": name,
                "base_model": spec["base_model"],
                "assets_ids": spec["assets_ids"],
                "created": created,
                "order": self._next_order(),
                "q": q,
                "t": t,
                "d": self.config.deploy_seconds,
                "outcome": outcome,
                "model_name": self._model_name(created + q + t),
                "foreign": False,
            }
            self.save()
            return task_id

    def _model_name(self, finished: float) -> str:
        return f"model_{int(finished)}_{self.rng.getrandbits(40):010X}.safetensors"

    def _training_status(self, task: dict[str, Any], now: float) -> tuple[str, list[dict[str, str]], int, int]:
        """(task_status, models, progress_percent, eta_relative) of a training at `now`. The estimate runs until
        the model serves (a training's wait ends there), whole seconds, 0 once it serves or ended otherwise."""
        elapsed = now - task["created"]
        q, t, d = task["q"], task["t"], task["d"]
        remaining = math.ceil(max(q + t + d - elapsed, 0))
        if elapsed < q:
            return "QUEUING", [], 0, remaining
        if elapsed < q + t:
            if task["outcome"] == "CANCELED" and elapsed >= q + t / 2:
                return "CANCELED", [], 50, 0
            return "TRAINING", [], min(99, int(100 * (elapsed - q) / t)) if t > 0 else 99, remaining
        if task["outcome"] == "SUCCESS":
            deploying = elapsed < q + t + d
            model_status = "DEPLOYING" if deploying else "SERVING"
            models = [{"model_name": task["model_name"], "model_status": model_status}]
            return "SUCCESS", models, 100, remaining if deploying else 0
        return task["outcome"], [], 50 if task["outcome"] == "CANCELED" else 100, 0

    def training_view(self, task_id: str) -> dict[str, Any] | None:
        """The body of GET /v3/training/subject|style for any training id, or None."""
        with self._lock:
            task = self.trainings.get(task_id)
            if task is None:
                return None
            status, models, progress, eta = self._training_status(task, self.now())
            return {
                "task_id": task_id,
                "task_status": status,
                "model_type": "lora",
                "models": models,
                "extra": {"eta_relative": eta, "progress_percent": progress},
            }

    def list_trainings(self, offset: int, limit: int, task_type: str | None) -> dict[str, Any]:
        """One page of GET /v3/training: newest created_at first, then latest created first."""
        with self._lock:
            now = self.now()
            listed = now - self.faults.list_lag  # a listing may lag a create: newer tasks are not shown yet
            tasks = [
                t
                for t in self.trainings.values()
                if (task_type is None or t["kind"] == task_type) and t["created"] <= listed
            ]
            tasks.sort(key=lambda t: (int(t["created"]), t["order"]), reverse=True)
            page = tasks[offset : offset + limit]
            items = []
            for task in page:
                status, models, _, _ = self._training_status(task, now)
                items.append(
                    {
                        "task_name": task["name"],
                        "task_id": task["task_id"],
                        "task_type": task["kind"],
                        "task_status": status,
                        "created_at": int(task["created"]),
                        "models": models,
                    }
                )
            more = offset + limit < len(tasks)
            return {"tasks": items, "pagination": {"next_cursor": f"c_{offset + limit}" if more else ""}}

    def seed_foreign(self, count: int, seed: int) -> int:
        """Add `count` trainings of "another team" (deterministic for a seed); returns how many exist now."""
        with self._lock:
            rng = random.Random(f"foreign/{seed}/{len(self.trainings)}")
            now = self.now()
            teams = ("team-b", "growth", "design", "ml-infra", "brand")
            topics = ("portrait", "product", "anime", "watercolor", "logo", "pet", "interior", "sketch")
            for i in range(count):
                roll = rng.random()
                task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                q, t, d = 60.0, 900.0, 120.0
                created = now - rng.uniform(3600, 120 * 86400)
                outcome = "SUCCESS"
                if roll < 0.15:
                    outcome = "FAILED"
                elif roll < 0.2:
                    outcome = "CANCELED"
                elif roll < 0.3:  # still training
                    elapsed = rng.uniform(q + 10, q + 600)
                    created, t = now - elapsed, elapsed - q + rng.uniform(600, 7200)
                elif roll < 0.34:  # queued
                    created, q = now - rng.uniform(1, 30), rng.uniform(600, 3600)
                elif roll < 0.38:  # trained, deploying
                    created, d = now - (q + t + rng.uniform(1, 30)), rng.uniform(600, 3600)
                name = f"{rng.choice(teams)}-{rng.choice(topics)}-{i:03d}-{rng.getrandbits(32):08x}"
                self.trainings[task_id] = {
                    "task_id": task_id,
                    "kind": "style" if rng.random() < 0.4 else "subject",
                    "name": name,
                    "base_model": "v1-5-pruned-emaonly",
                    "assets_ids": [],
                    "created": created,
                    "order": self._next_order(),
                    "q": q,
                    "t": t,
                    "d": d,
                    "outcome": outcome,
                    "model_name": f"model_{int(created + q + t)}_{rng.getrandbits(40):010X}.safetensors",
                    "foreign": True,
                }
            self.save()
            return len(self.trainings)

    # ---- image tasks ----------------------------------------------------------------------------------------

    def create_generation(self, request: dict[str, Any], key: str) -> tuple[str, int]:
        """Create a txt2img/img2img task from a validated request; returns (task_id, the seed it will use)."""
        with self._lock:
            self._charge(request["kind"], int(request["image_num"]))
            seed = request["seed"] if request["seed"] != -1 else self.rng.randrange(0, 2**32)
            outcome, reason = "TASK_STATUS_SUCCEED", ""
            pattern = self.faults.generation_fail_pattern
            if (pattern and re.search(pattern, request["prompt"])) or self.roll(self.faults.generation_fail):
                outcome, reason = "TASK_STATUS_FAILED", self.rng.choice(FAILURE_REASONS)
            task_id = self._new_id()
            self.generations[task_id] = {
                "task_id": task_id,
                "request": request,
                "seed": seed,
                "created": self.now(),
                "q": self.config.generation_queue_seconds,
                "p": self.config.generation_seconds,
                "outcome": outcome,
                "reason": reason,
                "key_hint": key_hint(key),
            }
            return task_id, seed

    def generation_view(self, task_id: str) -> dict[str, Any] | None:
        """The task's state at now: {status, reason, progress, eta, seed, request, times} or None."""
        with self._lock:
            task = self.generations.get(task_id)
            if task is None:
                return None
            elapsed = self.now() - task["created"]
            q, p = task["q"], task["p"]
            started = finished = None
            if elapsed < q:
                status, progress = "TASK_STATUS_QUEUED", 0
            elif elapsed < q + p:
                status, progress = "TASK_STATUS_PROCESSING", min(99, int(100 * (elapsed - q) / p)) if p else 99
                started = task["created"] + q
            else:
                status, progress = task["outcome"], 100
                started, finished = task["created"] + q, task["created"] + q + p
            return {
                "task_id": task_id,
                "status": status,
                "reason": task["reason"] if status == "TASK_STATUS_FAILED" else "",
                "progress_percent": progress,
                "eta": math.ceil(max(q + p - elapsed, 0)),
                "seed": task["seed"],
                "request": task["request"],
                "submitted": task["created"],
                "started": started,
                "finished": finished,
            }

    def output_bytes(self, task_id: str, index: int) -> bytes | None:
        """Output image `index` of a succeeded task (drawn on first read, cached), or None."""
        view = self.generation_view(task_id)
        if view is None or view["status"] != "TASK_STATUS_SUCCEED":
            return None
        request = view["request"]
        if not 0 <= index < request["image_num"]:
            return None
        name = f"{index}.{request['image_type']}"
        with self._lock:
            cached = self.store.read_output(task_id, name) if self.store else self.blobs.get(f"{task_id}/{name}")
        if cached is not None:
            return cached
        data = render(request, view["seed"], index)
        with self._lock:
            if self.store:
                self.store.write_output(task_id, name, data)
            else:
                self.blobs[f"{task_id}/{name}"] = data
        return data

    # ---- summary --------------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counts for GET /_sim/state."""
        with self._lock:
            now = self.now()
            trainings: collections.Counter[str] = collections.Counter()
            ours = 0
            for task in self.trainings.values():
                status, models, _, _ = self._training_status(task, now)
                label = f"{status}/{models[0]['model_status']}" if models else status
                trainings[label] += 1
                ours += not task["foreign"]
            generations: collections.Counter[str] = collections.Counter()
            for task_id in self.generations:
                view = self.generation_view(task_id)
                assert view is not None
                generations[view["status"]] += 1
            return {
                "now": now,
                "clock_offset": self.clock_offset,
                "boots": self.boots,
                "random_seed": self.base_seed,
                "assets": {
                    "total": len(self.assets),
                    "uploaded": sum(1 for a in self.assets.values() if a["uploaded"]),
                },
                "trainings": {"total": len(self.trainings), "ours": ours, "by_status": dict(sorted(trainings.items()))},
                "generations": {"total": len(self.generations), "by_status": dict(sorted(generations.items()))},
                "balance": self.balance,
                "spent": self.spent,
                "requests_logged": len(self.request_log),
                "faults": self.faults.to_json(),
            }
