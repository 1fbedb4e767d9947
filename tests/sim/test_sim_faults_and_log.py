"""Fault injection (config, spec syntax, admin endpoint), the request log, persistence across restarts."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import httpx
import pytest
from sim_helpers import KEY, Sim, generation_body, make_sim, training_body

from reconciler.sim.account import key_hint
from reconciler.sim.config import ConfigError, FaultConfig, SimConfig


def faulty(*specs: str) -> Sim:
    config = SimConfig(random_seed=5)
    for spec in specs:
        config.faults.apply_spec(spec)
    return make_sim(config)


def test_fault_spec_syntax() -> None:
    faults = FaultConfig()
    specs = "5xx=0.2 txt2img:429=0.1 drop=0.05 drop-after=0.05 latency=0.05 jitter=0.1 training-fail=0.1"
    extra = ["upload-expire=0.2", "generation-fail-pattern=^boom", "asset-forget=1", "txt2img:ghost=0.3", "list-lag=5"]
    for spec in [*specs.split(), *extra]:
        faults.apply_spec(spec)
    assert faults.rates == {"*": {"5xx": 0.2, "drop": 0.05, "drop-after": 0.05}, "txt2img": {"429": 0.1, "ghost": 0.3}}
    assert faults.list_lag == 5
    assert faults.rate("txt2img", "429") == 0.1 and faults.rate("assets", "429") == 0.0
    assert faults.rate("assets", "5xx") == 0.2
    assert (faults.latency, faults.latency_jitter, faults.training_fail) == (0.05, 0.1, 0.1)
    assert faults.generation_fail_pattern == "^boom"
    for bad in ("5xx", "5xx=2", "nope=1", "moon:5xx=0.1", "training-fail-pattern=(", "txt2img:latency=1"):
        with pytest.raises(ConfigError):
            faults.apply_spec(bad)


def test_5xx_mix_and_nothing_created() -> None:
    s = faulty("assets:5xx=1")
    seen = set()
    for _ in range(30):
        response = s.post("/v3/assets/training_dataset", {"file_extension": "png"})
        seen.add(response.status_code)
        if response.status_code == 500:
            assert response.json()["reason"] and response.json()["metadata"] == {}
        else:
            assert response.headers["content-type"].startswith("text/html")
    assert seen == {500, 502, 503}
    assert not s.account.assets
    assert s.get("/v3/training").status_code == 200  # other endpoints untouched


def test_injected_429() -> None:
    s = faulty("txt2img:429=1")
    response = s.post("/v3/async/txt2img", generation_body())
    assert response.status_code == 429 and response.json()["reason"] == "RATE_LIMIT_EXCEEDED"
    assert not s.account.generations


def test_drop_before_creates_nothing() -> None:
    s = faulty("txt2img:drop=1")
    with pytest.raises(httpx.RemoteProtocolError):
        s.post("/v3/async/txt2img", generation_body())
    assert not s.account.generations
    [record] = s.account.request_log
    assert (record["status"], record["fault"]) == (0, "drop")


def test_drop_after_creates_the_task() -> None:
    s = faulty("training-create:drop-after=1")
    ids = [s.upload()]
    with pytest.raises(httpx.RemoteProtocolError):
        s.post("/v3/training/subject", training_body(ids, name="alice-v1-deadbeef"))
    [task] = s.get("/v3/training").json()["tasks"]
    assert task["task_name"] == "alice-v1-deadbeef"
    record = s.account.request_log[-2]
    assert (record["endpoint"], record["status"], record["fault"]) == ("training-create", 200, "drop-after")


def test_ghost_creates_the_task_then_answers_an_error() -> None:
    """`ghost`: the request is handled (the task exists), then the answer is a 500, a 500 CREATE_TASK_FAILED,
    a 503 page or a dropped connection, as gateways have been seen to do; the log keeps the task id."""
    s = faulty("training-create:ghost=1", "txt2img:ghost=1")
    ids = [s.upload()]
    answers = set()
    for n in range(24):
        try:
            response = s.post("/v3/training/subject", training_body(ids, name=f"ghost-{n:02d}"))
        except httpx.RemoteProtocolError:
            answers.add("drop")
            continue
        assert response.status_code in (500, 503)
        reason = response.json()["reason"] if "json" in response.headers["content-type"] else ""
        answers.add("CREATE_TASK_FAILED" if reason == "CREATE_TASK_FAILED" else str(response.status_code))
    assert answers == {"500", "CREATE_TASK_FAILED", "503", "drop"}
    listed = s.get("/v3/training", params={"pagination.limit": 100}).json()["tasks"]
    assert sorted(t["task_name"] for t in listed) == [f"ghost-{n:02d}" for n in range(24)]  # every one was made
    records = [r for r in s.account.request_log if r["endpoint"] == "training-create"]
    assert {r["fault"] for r in records} == {"ghost-500", "ghost-CREATE_TASK_FAILED", "ghost-503", "ghost-drop"}
    assert all(r["body_summary"]["task_id"] for r in records)
    assert {r["status"] for r in records if r["fault"] == "ghost-drop"} == {0}
    with contextlib.suppress(httpx.RemoteProtocolError):
        s.post("/v3/async/txt2img", generation_body())
    assert len(s.account.generations) == 1  # paid for, whatever the answer said


def test_ghost_answer_picks_the_answer() -> None:
    s = faulty("training-create:ghost=1", "ghost-answer=CREATE_TASK_FAILED")
    ids = [s.upload()]
    for n in range(5):
        response = s.post("/v3/training/subject", training_body(ids, name=f"ghost-{n}"))
        assert (response.status_code, response.json()["reason"]) == (500, "CREATE_TASK_FAILED")
    assert len(s.account.trainings) == 5
    with pytest.raises(ConfigError):
        FaultConfig().apply_spec("ghost-answer=418")


def test_list_lag_hides_a_new_training_from_the_listing_for_a_while() -> None:
    s = faulty("list-lag=3")
    task_id = s.train(name="late-01234567")
    assert s.get("/v3/training").json()["tasks"] == []
    assert s.get("/v3/training/subject", params={"task_id": task_id}).json()["task_id"] == task_id
    s.clock.advance(3)
    assert [t["task_name"] for t in s.get("/v3/training").json()["tasks"]] == ["late-01234567"]


def test_training_outcomes_by_pattern() -> None:
    s = faulty("training-fail-pattern=^bad-", "training-cancel-pattern=^stop-")
    bad, stop, good = s.train(name="bad-1"), s.train(name="stop-1"), s.train(name="good-1")
    s.clock.advance(2.6)
    statuses = {
        t: s.get("/v3/training/subject", params={"task_id": t}).json()["task_status"] for t in (bad, stop, good)
    }
    assert statuses == {bad: "TRAINING", stop: "CANCELED", good: "TRAINING"}
    s.clock.advance(10)
    final = {t: s.get("/v3/training/subject", params={"task_id": t}).json() for t in (bad, stop, good)}
    assert [final[t]["task_status"] for t in (bad, stop, good)] == ["FAILED", "CANCELED", "SUCCESS"]
    assert final[bad]["models"] == [] and final[stop]["models"] == []


def test_training_fail_rate() -> None:
    s = faulty("training-fail=1")
    task_id = s.train()
    s.clock.advance(100)
    assert s.get("/v3/training/subject", params={"task_id": task_id}).json()["task_status"] == "FAILED"


def test_generation_failure_by_prompt() -> None:
    s = faulty("generation-fail-pattern=explode")
    task_id = s.generate(prompt="please explode")
    s.clock.advance(5)
    result = s.result(task_id)
    assert result["task"]["status"] == "TASK_STATUS_FAILED"
    assert result["task"]["reason"] != "" and result["images"] == []


def test_upload_expires_early() -> None:
    s = faulty("upload-expire=1")
    asset = s.post("/v3/assets/training_dataset", {"file_extension": "png"}).json()
    response = s.client.put(asset["upload_url"], content=b"x")
    assert response.status_code == 403 and b"Request has expired" in response.content


def test_asset_forgotten_then_reupload() -> None:
    s = faulty("asset-forget=1")
    first = s.upload()
    response = s.post("/v3/training/subject", training_body([first]))
    assert response.status_code == 400
    assert response.json()["message"] == f'image_dataset_items[0].assets_id: unknown assets_id "{first}"'
    s.account.faults.update({"asset_forget": 0})
    assert s.post("/v3/training/subject", training_body([first])).status_code == 400  # really gone
    assert s.post("/v3/training/subject", training_body([s.upload()])).status_code == 200


def test_faults_are_deterministic_with_a_seed() -> None:
    def run() -> list[int]:
        s = faulty("5xx=0.3")
        return [s.get("/v3/training").status_code for _ in range(40)]

    assert run() == run()
    assert 200 in run() and 500 in {c // 100 * 100 for c in run()}


def test_admin_faults_endpoint(sim: Sim) -> None:
    response = sim.client.post("/_sim/faults", json={"specs": ["task-result:5xx=1"], "latency": 0})
    assert response.status_code == 200
    assert response.json()["rates"] == {"task-result": {"5xx": 1.0}}
    task_id = sim.generate()
    assert sim.get("/v3/async/task-result", params={"task_id": task_id}).status_code >= 500
    assert sim.client.post("/_sim/faults", json={"reset": True}).json()["rates"] == {}
    assert sim.get("/v3/async/task-result", params={"task_id": task_id}).status_code == 200
    bad = sim.client.post("/_sim/faults", json={"specs": ["wat=1"]})
    assert bad.status_code == 400


def test_clock_admin_endpoint() -> None:
    s = make_sim(SimConfig(random_seed=1))
    assert s.client.post("/_sim/clock", json={"advance": 10}).status_code == 403
    s = make_sim(SimConfig(random_seed=1, clock_control=True))
    task_id = s.train()
    assert s.client.post("/_sim/clock", json={"advance": 100}).json()["clock_offset"] == 100
    assert s.get("/v3/training/subject", params={"task_id": task_id}).json()["models"][0]["model_status"] == "SERVING"


def test_request_log_records(sim: Sim) -> None:
    task_id = sim.train(name="alice-v1-0123abcd", items=2)
    gen = sim.generate(prompt="hello", image_num=2, seed=5, loras=[{"model_name": "m1", "strength": 0.5}])
    sim.get("/v3/async/task-result", params={"task_id": gen})
    log = sim.account.request_log
    assert [r["endpoint"] for r in log] == ["assets", "upload"] * 2 + ["training-create", "txt2img", "task-result"]
    for record in log:
        assert set(record) == {
            "ts",
            "method",
            "path",
            "query",
            "status",
            "endpoint",
            "key_hint",
            "body_summary",
            "fault",
        }
        assert KEY not in json.dumps(record)
    assert log[0]["key_hint"] == key_hint(KEY) and log[1]["key_hint"] == ""  # storage gets no key
    assert log[1]["body_summary"]["assets_id"] == log[0]["body_summary"]["assets_id"]
    create = log[4]["body_summary"]
    assert create["name"] == "alice-v1-0123abcd" and create["items"] == 2 and create["task_id"] == task_id
    assert create["assets_ids"] == [log[0]["body_summary"]["assets_id"], log[2]["body_summary"]["assets_id"]]
    assert log[5]["body_summary"] == {
        "prompt": "hello", "image_num": 2, "loras": ["m1"], "seed": 5, "task_id": gen, "used_seed": 5
    }  # fmt: skip
    assert log[6]["query"] == {"task_id": gen}
    served = sim.client.get("/_sim/requests", params={"since": 5}).json()
    assert served["next"] == 7 and [r["endpoint"] for r in served["requests"]] == ["txt2img", "task-result"]


def test_state_summary(sim: Sim) -> None:
    sim.train()
    state = sim.client.get("/_sim/state").json()
    assert state["trainings"] == {"total": 1, "ours": 1, "by_status": {"QUEUING": 1}}
    assert state["assets"] == {"total": 2, "uploaded": 2}


def test_persistence_across_restart(tmp_path: Path) -> None:
    config = SimConfig(random_seed=2, seed_foreign_tasks=5)
    first = make_sim(config, tmp_path)
    task_id = first.train(name="keep-me")
    gen = first.generate(seed=3)
    first.clock.advance(60)
    url = first.result(gen)["images"][0]["image_url"]
    image = first.client.get(url).content
    first.account.flush()
    assert (tmp_path / "account.json").exists() and list((tmp_path / "assets").iterdir())
    lines = (tmp_path / "requests.jsonl").read_text().splitlines()
    assert len(lines) == len(first.account.request_log)

    second = make_sim(SimConfig(random_seed=2, seed_foreign_tasks=5), tmp_path, clock=first.clock)
    tasks = second.get("/v3/training", params={"pagination.limit": 100}).json()["tasks"]
    assert len(tasks) == 6  # not seeded twice
    assert second.get("/v3/training/subject", params={"task_id": task_id}).json()["task_status"] == "SUCCESS"
    assert second.client.get(url).content == image  # same signing secret, same bytes
    new_asset = second.upload()
    assert new_asset not in first.account.assets  # the RNG does not repeat ids after a restart
    assert second.account.boots == 1


def test_latency_fault_delays_answers() -> None:
    s = faulty("latency=0.05")
    started = time.monotonic()
    assert s.get("/v3/training").status_code == 200
    assert time.monotonic() - started >= 0.05


def test_storage_5xx_is_s3_xml() -> None:
    s = faulty("upload:5xx=1")
    asset = s.post("/v3/assets/training_dataset", {"file_extension": "png"}).json()
    response = s.client.put(asset["upload_url"], content=b"x")
    assert response.status_code in (500, 502, 503) and response.content.startswith(b"<?xml")
    assert not s.account.assets[asset["assets_id"]]["uploaded"]


def test_config_from_json(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    path.write_text(
        json.dumps(
            {"api_keys": ["a", "b"], "training_total_seconds": 10, "ipm_txt2img": 0,
             "faults": {"specs": ["txt2img:429=0.5"], "training_fail": 0.25}}
        )
    )  # fmt: skip
    config = SimConfig.from_file(path)
    assert config.api_keys == frozenset({"a", "b"})
    assert (config.training_queue_seconds, config.training_seconds, config.deploy_seconds) == (2.0, 6.0, 2.0)
    assert config.faults.rate("txt2img", "429") == 0.5 and config.faults.training_fail == 0.25
    path.write_text(json.dumps({"ipm": 3}))
    with pytest.raises(ConfigError, match="unknown field"):
        SimConfig.from_file(path)
