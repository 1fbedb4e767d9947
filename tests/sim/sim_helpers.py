"""Helpers for the simulator tests: a fake clock, an in-process sync client, request-body builders."""

from __future__ import annotations

import asyncio
import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from reconciler.sim.account import Account
from reconciler.sim.app import create_app
from reconciler.sim.config import SimConfig

KEY = "sk-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
T0 = 1_700_000_000.0


class SyncASGITransport(httpx.BaseTransport):
    """httpx.ASGITransport for a sync httpx.Client: one private event loop runs the app in process."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inner = httpx.ASGITransport(app=app)
        self.loop = asyncio.new_event_loop()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        forwarded = httpx.Request(request.method, request.url, headers=request.headers, stream=httpx.ByteStream(body))

        async def run() -> httpx.Response:
            response = await self.inner.handle_async_request(forwarded)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return self.loop.run_until_complete(run())

    def close(self) -> None:
        self.loop.close()


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = T0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Sim:
    client: httpx.Client
    account: Account
    app: Any
    clock: FakeClock

    def post(self, path: str, body: Any, **kw: Any) -> Any:
        return self.client.post(path, json=body, headers=kw.pop("headers", AUTH), **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=kw.pop("headers", AUTH), **kw)

    def upload(self, data: bytes | None = None, ext: str = "jpeg") -> str:
        """Ask for an upload URL and PUT an image there; the assets_id."""
        body = self.post("/v3/assets/training_dataset", {"file_extension": ext}).json()
        put = self.client.put(body["upload_url"], content=data or image_bytes("JPEG"))
        assert put.status_code == 200, put.text
        return str(body["assets_id"])

    def train(self, kind: str = "subject", name: str = "alice-v1-0123abcd", items: int = 2) -> str:
        ids = [self.upload() for _ in range(items)]
        response = self.post(f"/v3/training/{kind}", training_body(ids, kind=kind, name=name))
        assert response.status_code == 200, response.text
        return str(response.json()["task_id"])

    def generate(self, kind: str = "txt2img", **request: Any) -> str:
        response = self.post(f"/v3/async/{kind}", generation_body(kind, **request))
        assert response.status_code == 200, response.text
        return str(response.json()["task_id"])

    def result(self, task_id: str) -> dict[str, Any]:
        response = self.get("/v3/async/task-result", params={"task_id": task_id})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def make_sim(config: SimConfig | None = None, data_dir: Path | None = None, clock: FakeClock | None = None) -> Sim:
    clock = clock or FakeClock()
    app = create_app(config or SimConfig(random_seed=1), data_dir, clock)
    client = httpx.Client(transport=SyncASGITransport(app), base_url="http://testserver")
    return Sim(client, app.state.account, app, clock)


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (32, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, fmt)
    return out.getvalue()


def training_body(assets_ids: list[str], kind: str = "subject", name: str = "alice-v1-0123abcd") -> dict[str, Any]:
    """The body SDK 0.7.1 sends for create_training_subject (nulls included), or a style body."""
    body: dict[str, Any] = {
        "name": name,
        "base_model": "v1-5-pruned-emaonly",
        "image_dataset_items": [{"assets_id": a} for a in assets_ids],
        "width": 512,
        "height": 512,
        "expert_setting": {
            "instance_prompt": "a close photo of ohwx man",
            "class_prompt": "person",
            "max_train_steps": 500,
            "learning_rate": None,
            "seed": None,
            "lr_scheduler": None,
            "with_prior_preservation": None,
            "prior_loss_weight": None,
            "lora_r": None,
            "lora_alpha": None,
            "lora_text_encoder_r": None,
            "lora_text_encoder_alpha": None,
        },
        "components": [
            {"name": "face_crop_region", "args": [{"name": "ratio", "value": "1.4"}]},
            {"name": "resize", "args": [{"name": "height", "value": "512"}, {"name": "width", "value": "512"}]},
            {
                "name": "face_restore",
                "args": [{"name": "method", "value": "gfpgan_1.4"}, {"name": "upscale", "value": "1.0"}],
            },
        ],
    }
    if kind == "style":
        for i, item in enumerate(body["image_dataset_items"]):
            item["caption"] = f"caption {i}"
        body["components"] = None
    return body


def generation_body(kind: str = "txt2img", **request: Any) -> dict[str, Any]:
    """The body SDK 0.7.1's txt2img_v3 / img2img_v3 sends, with `request` fields overridden."""
    req: dict[str, Any] = {
        "model_name": "realisticVisionV51_v51VAE_94301.safetensors",
        "prompt": "a photo of ohwx woman",
        "height": 512,
        "width": 512,
        "image_num": 1,
        "sd_vae": None,
        "steps": 20,
        "guidance_scale": 7.5,
        "sampler_name": "Euler a",
        "seed": -1,
        "negative_prompt": None,
        "loras": None,
        "embeddings": None,
        "clip_skip": None,
    }
    if kind == "txt2img":
        req.update(refiner=None, hires_fix=None)
    else:
        req.update(image_base64=base64.b64encode(image_bytes("PNG")).decode(), strength=0.5, steps=None,
                   controlnet=None, extra={})  # fmt: skip
    req.update(request)
    extra = {
        "response_image_type": "png",
        "enable_nsfw_detection": False,
        "nsfw_detection_level": 0,
        "custom_storage": {},
        "enterprise_plan": {},
    }
    return {"extra": extra, "request": req}
