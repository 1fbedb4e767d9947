"""Training endpoints: creation, every validation rule, the state machine through time, the paginated list."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sim_helpers import Sim, make_sim, training_body

from reconciler.sim.config import SimConfig


def test_create_returns_only_a_task_id(sim: Sim) -> None:
    ids = [sim.upload(), sim.upload()]
    response = sim.post("/v3/training/subject", training_body(ids))
    assert response.status_code == 200
    assert list(response.json()) == ["task_id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", response.json()["task_id"])


def test_style_create_with_captions_and_null_components(sim: Sim) -> None:
    assert sim.train("style", name="watercolor-1")


def _set(body: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = body
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is _DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value


_DELETE = object()

TRAINING_CASES = [
    ("name", _DELETE, "name: required"),
    ("base_model", "sd-2", "base_model: must be one of"),
    ("base_model", None, "base_model: required"),
    ("width", 0, "width: must be >= 1, got 0"),
    ("height", "tall", 'height: must be an integer, got "tall"'),
    ("width", _DELETE, "width: required"),
    ("image_dataset_items", [], "image_dataset_items: must hold at least 1 item, got 0"),
    ("image_dataset_items", [{"assets_id": "x"}] * 51, "image_dataset_items: at most 50 items, got 51"),
    ("image_dataset_items.0.assets_id", None, "image_dataset_items[0].assets_id: required"),
    ("image_dataset_items.1.assets_id", "f" * 32, f'image_dataset_items[1].assets_id: unknown assets_id "{"f" * 32}"'),
    (
        "image_dataset_items.0.caption",
        "x" * 1025,
        "image_dataset_items[0].caption: length must be in [1, 1024], got 1025",
    ),
    ("expert_setting.instance_prompt", None, "expert_setting.instance_prompt: required"),
    ("expert_setting.class_prompt", _DELETE, "expert_setting.class_prompt: required"),
    ("expert_setting.class_prompt", "dog", "expert_setting.class_prompt: must be one of ['person'], got \"dog\""),
    ("expert_setting", None, "expert_setting.instance_prompt: required"),
    ("expert_setting.lora_r", 3, "expert_setting.lora_r: must be in [4, 128], got 3"),
    ("expert_setting.lora_alpha", 129, "expert_setting.lora_alpha: must be in [4, 128], got 129"),
    ("expert_setting.lora_text_encoder_r", 200, "expert_setting.lora_text_encoder_r: must be in [4, 128], got 200"),
    ("expert_setting.lora_text_encoder_alpha", 1, "expert_setting.lora_text_encoder_alpha: must be in [4, 128], got 1"),
    ("expert_setting.train_batch_size", 5, "expert_setting.train_batch_size: must be in [1, 4], got 5"),
    ("expert_setting.lr_scheduler", "step", "expert_setting.lr_scheduler: must be one of"),
    ("expert_setting.learning_rate", 0, "expert_setting.learning_rate: must be > 0, got 0"),
    ("expert_setting.learning_rate", "fast", 'expert_setting.learning_rate: must be a number, got "fast"'),
    ("expert_setting.max_train_steps", 0, "expert_setting.max_train_steps: must be >= 1, got 0"),
    ("expert_setting.seed", 0, "expert_setting.seed: must be >= 1, got 0"),
    ("expert_setting.lr_warmup_steps", -1, "expert_setting.lr_warmup_steps: must be >= 0, got -1"),
    ("expert_setting.with_prior_preservation", "yes", "expert_setting.with_prior_preservation: must be a boolean"),
    (
        "components.0.name",
        "upscale",
        "components[0].name: must be one of ['face_crop_region', 'resize', 'face_restore']",
    ),
    ("components.1.args.0.value", 512, "components[1].args[0].value: must be a string, got 512"),
]


@pytest.mark.parametrize(
    ("path", "value", "message"), TRAINING_CASES, ids=[c[0] + ":" + repr(c[1])[:20] for c in TRAINING_CASES]
)
def test_training_validation(sim: Sim, path: str, value: Any, message: str) -> None:
    body = training_body([sim.upload(), sim.upload()])
    _set(body, path, value)
    response = sim.post("/v3/training/subject", body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert (error["code"], error["reason"], error["metadata"]) == (400, "INVALID_REQUEST_BODY", {})
    assert error["message"].startswith(message)
    assert not sim.account.trainings


def test_style_requires_captions(sim: Sim) -> None:
    body = training_body([sim.upload()], kind="style")
    body["image_dataset_items"][0]["caption"] = None
    response = sim.post("/v3/training/style", body)
    assert response.json()["message"] == "image_dataset_items[0].caption: required"
    body["image_dataset_items"][0]["caption"] = "ok"
    del body["expert_setting"]["instance_prompt"]  # style has no instance_prompt requirement
    assert sim.post("/v3/training/style", body).status_code == 200


def test_never_uploaded_asset_is_rejected(sim: Sim) -> None:
    fresh = sim.post("/v3/assets/training_dataset", {"file_extension": "png"}).json()["assets_id"]
    response = sim.post("/v3/training/subject", training_body([sim.upload(), fresh]))
    assert response.status_code == 400
    assert response.json()["message"] == f'image_dataset_items[1].assets_id: never uploaded assets_id "{fresh}"'


@pytest.mark.parametrize(
    ("field", "value"),
    [("learning_rate", 3e-4), ("learning_rate", "1e-4"), ("max_train_steps", "500"), ("lr_scheduler", "cosine"),
     ("train_batch_size", 4), ("lr_warmup_steps", 0), ("train_text_encoder", True), ("lora_r", 128)],
)  # fmt: skip
def test_lenient_accepted_values(sim: Sim, field: str, value: Any) -> None:
    body = training_body([sim.upload()])
    body["expert_setting"][field] = value
    body["unknown_top_level"] = {"x": 1}
    assert sim.post("/v3/training/subject", body).status_code == 200


def test_integer_assets_id_is_accepted_as_string(sim: Sim) -> None:
    asset = sim.upload()
    sim.account.assets["100024"] = {**sim.account.assets[asset], "assets_id": "100024"}
    body = training_body([asset])
    body["image_dataset_items"].append({"assets_id": 100024})
    assert sim.post("/v3/training/subject", body).status_code == 200


def _status(sim: Sim, task_id: str, kind: str = "subject") -> dict[str, Any]:
    response = sim.get(f"/v3/training/{kind}", params={"task_id": task_id})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_training_state_machine(sim: Sim) -> None:
    task_id = sim.train()
    first = _status(sim, task_id)
    assert first == {
        "task_id": task_id,
        "task_status": "QUEUING",
        "model_type": "lora",
        "models": [],
        "extra": {"eta_relative": 5, "progress_percent": 0},  # until the model serves: 1 + 3 + 1 s
    }
    sim.clock.advance(1.0)
    seen = []
    for _ in range(6):
        body = _status(sim, task_id)
        seen.append((body["task_status"], body["extra"]["progress_percent"], body["extra"]["eta_relative"]))
        sim.clock.advance(0.5)
    assert [s[0] for s in seen] == ["TRAINING"] * 6
    assert [s[1] for s in seen] == sorted(s[1] for s in seen) and seen[0][1] == 0 and seen[-1][1] > 50
    assert [s[2] for s in seen] == sorted((s[2] for s in seen), reverse=True)
    sim.clock.advance(0.01)
    done = _status(sim, task_id)
    assert done["task_status"] == "SUCCESS"
    assert done["extra"] == {"eta_relative": 1, "progress_percent": 100}  # still deploying: about a second
    [model] = done["models"]
    assert model["model_status"] == "DEPLOYING"
    assert re.fullmatch(r"model_\d{10}_[0-9A-F]{10}\.safetensors", model["model_name"])
    sim.clock.advance(1.0)
    serving = _status(sim, task_id, kind="style")  # either GET works for either kind
    assert serving["models"] == [{"model_name": model["model_name"], "model_status": "SERVING"}]
    assert serving["task_status"] == "SUCCESS" and serving["extra"]["eta_relative"] == 0


def test_a_ten_minute_training_estimates_until_it_serves() -> None:
    config = SimConfig(random_seed=1)
    config.with_training_total(600)
    s = make_sim(config)
    task_id = s.train()
    seen = []
    for _ in range(12):
        body = _status(s, task_id)
        seen.append((body["task_status"], body["extra"]["eta_relative"]))
        s.clock.advance(50)
    assert [eta for _, eta in seen] == [600 - 50 * i for i in range(12)]
    assert {status for status, _ in seen} == {"QUEUING", "TRAINING", "SUCCESS"}


def test_configured_durations() -> None:
    s = make_sim(SimConfig(training_queue_seconds=0, training_seconds=10, deploy_seconds=0, random_seed=1))
    task_id = s.train()
    assert _status(s, task_id)["task_status"] == "TRAINING"
    s.clock.advance(10)
    assert _status(s, task_id)["models"][0]["model_status"] == "SERVING"


def _all_pages(sim: Sim, **params: Any) -> tuple[list[dict[str, Any]], int]:
    tasks, cursor, pages = [], "", 0
    while True:
        response = sim.get("/v3/training", params={**params, "pagination.cursor": cursor})
        assert response.status_code == 200
        body = response.json()
        tasks += body["tasks"]
        pages += 1
        cursor = body["pagination"]["next_cursor"]
        if cursor == "":
            return tasks, pages
        assert re.fullmatch(r"c_\d+", cursor)


def test_pagination_over_seeded_tasks() -> None:
    s = make_sim(SimConfig(seed_foreign_tasks=257, random_seed=3))
    ours = s.train(name="ours-1")
    tasks, pages = _all_pages(s, **{"pagination.limit": 25})
    assert pages == 11
    ids = [t["task_id"] for t in tasks]
    assert len(ids) == len(set(ids)) == 258
    assert ids[0] == ours  # newest first
    created = [t["created_at"] for t in tasks]
    assert created == sorted(created, reverse=True)
    for task in tasks:
        assert set(task) == {"task_name", "task_id", "task_type", "task_status", "created_at", "models"}
        assert task["task_type"] in ("subject", "style")
        assert isinstance(task["models"], list) and isinstance(task["created_at"], int)
    statuses = {t["task_status"] for t in tasks}
    assert {"SUCCESS", "FAILED", "TRAINING", "QUEUING", "CANCELED"} <= statuses
    subject, _ = _all_pages(s, task_type="subject", **{"pagination.limit": 100})
    style, _ = _all_pages(s, task_type="style", **{"pagination.limit": 100})
    assert {t["task_type"] for t in subject} == {"subject"} and {t["task_type"] for t in style} == {"style"}
    assert len(subject) + len(style) == 258


def test_list_defaults_and_last_page() -> None:
    s = make_sim(SimConfig(seed_foreign_tasks=12, random_seed=3))
    body = s.get("/v3/training").json()
    assert len(body["tasks"]) == 10 and body["pagination"] == {"next_cursor": "c_10"}
    body = s.get("/v3/training", params={"pagination.cursor": "c_10"}).json()
    assert len(body["tasks"]) == 2 and body["pagination"] == {"next_cursor": ""}
    body = s.get("/v3/training", params={"pagination.cursor": "c_500"}).json()
    assert body == {"tasks": [], "pagination": {"next_cursor": ""}}


def test_empty_account_lists_nothing(sim: Sim) -> None:
    assert sim.get("/v3/training").json() == {"tasks": [], "pagination": {"next_cursor": ""}}


@pytest.mark.parametrize(
    ("params", "message"),
    [({"pagination.limit": "0"}, "pagination.limit: must be in [1, 100], got 0"),
     ({"pagination.limit": "101"}, "pagination.limit: must be in [1, 100], got 101"),
     ({"pagination.limit": "ten"}, 'pagination.limit: must be an integer, got "ten"'),
     ({"pagination.cursor": "10"}, 'pagination.cursor: expected "c_<offset>", got "10"'),
     ({"task_type": "video"}, 'task_type: must be one of [subject, style], got "video"')],
)  # fmt: skip
def test_list_parameter_errors(sim: Sim, params: dict[str, str], message: str) -> None:
    response = sim.get("/v3/training", params=params)
    assert response.status_code == 400
    assert response.json()["message"] == message


def test_seeding_is_deterministic() -> None:
    a = make_sim(SimConfig(seed_foreign_tasks=40, random_seed=9)).get("/v3/training", params={"pagination.limit": 100})
    b = make_sim(SimConfig(seed_foreign_tasks=40, random_seed=9)).get("/v3/training", params={"pagination.limit": 100})
    assert a.json() == b.json()


def test_seed_admin_endpoint(sim: Sim) -> None:
    response = sim.client.post("/_sim/seed", json={"count": 30, "seed": 4})
    assert response.json() == {"trainings": 30}
    assert len(sim.get("/v3/training", params={"pagination.limit": 100}).json()["tasks"]) == 30


def test_list_page_max_caps_every_page_and_the_cursor_goes_on() -> None:
    s = make_sim(SimConfig(seed_foreign_tasks=120, random_seed=3, list_max_limit=50))
    tasks, pages = _all_pages(s, **{"pagination.limit": 100})
    assert pages == 3 and len({t["task_id"] for t in tasks}) == 120
    body = s.get("/v3/training", params={"pagination.limit": 20}).json()  # a smaller limit is served as asked
    assert len(body["tasks"]) == 20 and body["pagination"] == {"next_cursor": "c_20"}
