"""The client against the simulator: in process (ASGI) and over a real socket (uvicorn in a thread).

The two were written apart from Novita's API documentation, so a misreading on either side fails here.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.errors import AmbiguousSubmitError, NovitaError
from reconciler.novita import NovitaClient, RetryInfo, TrainingStatus
from tests.novita_fixtures import API_KEY, JPEG, PNG, run

sim_app = pytest.importorskip("reconciler.sim.app", reason="the simulator has not landed yet")
sim_config = pytest.importorskip("reconciler.sim.config")
sim_server = pytest.importorskip("reconciler.sim.server")

COMPONENTS = [
    {"name": "face_crop_region", "args": [{"name": "ratio", "value": "1.4"}]},
    {"name": "resize", "args": [{"name": "height", "value": "512"}, {"name": "width", "value": "512"}]},
    {"name": "face_restore", "args": [{"name": "method", "value": "gfpgan_1.4"}, {"name": "upscale", "value": "1.0"}]},
]


def _training_body(name: str, assets: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "base_model": "v1-5-pruned-emaonly",
        "width": 512,
        "height": 512,
        "image_dataset_items": [{"assets_id": a} for a in assets],
        "expert_setting": {
            "instance_prompt": "a close photo of ohwx woman",
            "class_prompt": "person",
            "max_train_steps": 100,
            "learning_rate": 1e-4,
        },
        "components": COMPONENTS,
    }


def _txt2img_body(lora: str) -> dict[str, Any]:
    return {
        "extra": {"response_image_type": "png"},
        "request": {
            "model_name": "realisticVisionV51_v51VAE_94301.safetensors",
            "prompt": "a photo of ohwx woman, cinematic lighting",
            "negative_prompt": "bad face",
            "width": 512,
            "height": 384,
            "image_num": 2,
            "steps": 20,
            "guidance_scale": 7.5,
            "sampler_name": "Euler a",
            "seed": 123,
            "loras": [{"model_name": lora, "strength": 0.7}],
        },
    }


async def _wait_training(client: NovitaClient, task_id: str) -> TrainingStatus:
    for _ in range(500):
        status = await client.get_training(task_id)
        if status.is_done or status.is_failed:
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"training {task_id} never finished: {status}")


async def _workflow(client: NovitaClient, tmp_path: Path, name: str) -> None:
    images = [tmp_path / "a.png", tmp_path / "b.jpg"]
    images[0].write_bytes(PNG)
    images[1].write_bytes(JPEG)
    assets = [await client.upload_image(images[0], "png"), await client.upload_image(images[1], "jpg")]
    assert all(isinstance(a, str) and a for a in assets)

    task_id = await client.create_training("subject", _training_body(name, assets))
    status = await _wait_training(client, task_id)
    assert status.is_done, status
    assert status.model_name and status.model_name.endswith(".safetensors")

    listed = {t.task_name: t for t in await client.list_trainings()}
    assert listed[name].task_id == task_id and listed[name].is_done
    assert listed[name].model_name == status.model_name
    assert any(t.task_id == task_id for t in await client.list_trainings("subject"))

    gen_id = await client.create_generation("txt2img", _txt2img_body(status.model_name))
    for _ in range(500):
        result = await client.task_result(gen_id)
        if result.is_done or result.is_failed:
            break
        await asyncio.sleep(0.02)
    assert result.is_done, result
    assert len(result.images) == 2 and result.seed
    for i, image in enumerate(result.images):
        dest = tmp_path / "out" / f"{i}.{image.image_type}"
        got = await client.download_image(image.image_url, dest, expected_type=image.image_type)
        assert got.format == image.image_type == "png"
        assert hashlib.sha256(dest.read_bytes()).hexdigest() == got.sha256 and got.size > 100
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png"]


def _asgi_client(app: Any, **kwargs: Any) -> NovitaClient:
    transport = httpx.ASGITransport(app=app)
    return NovitaClient(API_KEY, "http://sim.test", transport=transport, storage_transport=transport, **kwargs)


def test_workflow_in_process(tmp_path: Path) -> None:
    app = sim_app.create_app(sim_config.SimConfig.fast(), tmp_path / "sim")

    async def main() -> None:
        async with _asgi_client(app) as client:
            await _workflow(client, tmp_path, "alice-v1-0123abcd")

    run(main())


def test_workflow_over_a_real_socket(tmp_path: Path) -> None:
    with sim_server.running_simulator(sim_config.SimConfig.fast(), tmp_path / "sim") as sim:

        async def main() -> None:
            async with NovitaClient(API_KEY, sim.base_url, timeout=10) as client:
                await _workflow(client, tmp_path, "bob-v1-89abcdef")

        run(main())


def test_pagination_against_the_simulator(tmp_path: Path) -> None:
    config = sim_config.SimConfig.fast(seed_foreign_tasks=230)
    app = sim_app.create_app(config, None)

    async def main() -> None:
        async with _asgi_client(app) as client:
            tasks = await client.list_trainings()
            assert len(tasks) == len({t.task_id for t in tasks}) >= 230

    run(main())


def test_errors_from_the_simulator(tmp_path: Path) -> None:
    app = sim_app.create_app(sim_config.SimConfig.fast(), None)

    async def main() -> None:
        async with _asgi_client(app) as client:
            with pytest.raises(NovitaError) as info:
                await client.get_training("no-such-task")
            assert info.value.status == 404 and info.value.reason == "TASK_NOT_FOUND"
            with pytest.raises(NovitaError) as info:
                await client.create_training("subject", {**_training_body("x-01234567", ["a"]), "width": 0})
            assert info.value.status == 400 and info.value.reason == "INVALID_REQUEST_BODY"
            assert not isinstance(info.value, AmbiguousSubmitError)
            assert str(info.value).startswith("Novita POST /v3/training/subject: 400 INVALID_REQUEST_BODY: ")

    run(main())


def test_faults_are_survived(tmp_path: Path) -> None:
    """Expired upload URLs and flaky reads (5xx, 429) are retried until they work."""
    config = sim_config.SimConfig.fast(random_seed=7)
    config.faults.update(
        {"upload_expire": 0.5, "rates": {"training-get": {"5xx": 0.3, "429": 0.2}, "assets": {"5xx": 0.3}}}
    )
    app = sim_app.create_app(config, None)
    retries: list[RetryInfo] = []

    async def no_wait(delay: float) -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        async with _asgi_client(app, max_retries=12, sleep=no_wait, on_retry=retries.append) as client:
            image = tmp_path / "a.png"
            image.write_bytes(PNG)
            assets = [await client.upload_image(image, "png") for _ in range(6)]
            task_id = await client.create_training("subject", _training_body("flaky-01234567", assets))
            assert (await _wait_training(client, task_id)).is_done

    run(main())
    assert any(r.status == 403 for r in retries), "no expired upload URL was met"
    assert any(r.status in (429, 500, 502, 503) for r in retries)


def test_wrong_key_is_refused(tmp_path: Path) -> None:
    app = sim_app.create_app(sim_config.SimConfig.fast(api_keys=frozenset({"the-right-key"})), None)

    async def main() -> None:
        async with _asgi_client(app) as client:
            with pytest.raises(NovitaError) as info:
                await client.list_trainings()
            assert info.value.status == 403 and API_KEY not in str(info.value)

    run(main())


def test_dropped_create_is_ambiguous_and_resolved_by_name_over_a_socket(tmp_path: Path) -> None:
    """A training create whose connection drops after Novita made the task: AmbiguousSubmitError, then the
    deterministic name in the listing tells the caller to adopt, not resubmit. Dropped reads are retried."""
    with sim_server.running_simulator(sim_config.SimConfig.fast(random_seed=3), None) as sim:

        async def no_wait(delay: float) -> None:
            await asyncio.sleep(0)

        async def main() -> None:
            async with NovitaClient(API_KEY, sim.base_url, timeout=10, sleep=no_wait, max_retries=10) as client:
                image = tmp_path / "a.png"
                image.write_bytes(PNG)
                assets = [await client.upload_image(image, "png")]
                sim.account.faults.update({"rates": {"training-create": {"drop-after": 1.0}, "txt2img": {"drop": 1.0}}})
                with pytest.raises(AmbiguousSubmitError):
                    await client.create_training("subject", _training_body("carol-v1-77d2e918", assets))
                with pytest.raises(AmbiguousSubmitError):  # dropped before work: still unknowable to the client
                    await client.create_generation("txt2img", _txt2img_body("model_x.safetensors"))
                sim.account.faults.update({"reset": True, "rates": {"training-list": {"drop": 0.5}}})
                found = [t for t in await client.list_trainings() if t.task_name == "carol-v1-77d2e918"]
                assert len(found) == 1  # exactly one task was made: adopt it
                assert (await _wait_training(client, found[0].task_id)).is_done

        run(main())


def test_the_balance_and_a_refusal_for_want_of_it(tmp_path: Path) -> None:
    """`balance()` reads 1/10,000 USD strings; a submit the balance cannot cover is a plain (not ambiguous) 400,
    never retried."""
    with sim_server.running_simulator(sim_config.SimConfig.fast(balance=50), None) as sim:

        async def main() -> None:
            async with NovitaClient(API_KEY, sim.base_url, timeout=10) as client:
                found = await client.balance()
                assert (found.availableBalance, found.usd("availableBalance")) == (50, 0.005)
                await client.create_generation("txt2img", _txt2img_body_plain())
                with pytest.raises(NovitaError) as info:
                    await client.create_generation("txt2img", _txt2img_body_plain())
                assert (info.value.status, info.value.reason) == (400, "BILLING_BALANCE_NOT_ENOUGH")
                assert not isinstance(info.value, AmbiguousSubmitError)
                assert (await client.balance()).availableBalance == 10

        run(main())
        refused = [r for r in sim.account.request_log if r["endpoint"] == "txt2img" and r["status"] == 400]
        assert len(refused) == 1


def _txt2img_body_plain() -> dict[str, Any]:
    body = _txt2img_body("unused")
    body["request"].pop("loras", None)
    return body
