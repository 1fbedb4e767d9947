"""`reconciler explain` through the real CLI against the simulator: what an identity is made of, where it is held,
and what the next apply pays for, on a converged project, after a reverted edit, a renamed LoraModel, and bad input."""

from __future__ import annotations

import json

import pytest

from tests.e2e.harness import Project
from tests.e2e.test_run_cache_e2e import GENS, PORTRAITS, PROMPT, converge

pytestmark = pytest.mark.e2e


def explain(project: Project, *args: str) -> dict[str, object]:
    done = project.run("explain", "--json", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    found: dict[str, object] = json.loads(done.stdout)
    return found


def test_a_converged_generation_is_held_where_it_is_declared_and_costs_nothing(project: Project) -> None:
    converge(project)
    mark = len(project.sim.requests())
    found = explain(project, "Generation/alice-portraits")
    assert found["next_apply"] is None
    fields = found["fields"]
    assert isinstance(fields, dict) and fields["type"] == "txt2img" and fields["request"]["seed"] == 123
    held = found["held"]
    assert isinstance(held, list) and held[0]["source"] == "state" and held[0]["where"] == PORTRAITS
    assert {h["path"] for h in held[0]["files"]} == {
        f"{PORTRAITS}/alice-portraits-1.png",
        f"{PORTRAITS}/alice-portraits-2.png",
    }
    text = project.run("explain", "alice-portraits")  # a bare name, in text
    assert text.returncode == 0 and text.stdout.startswith("Generation/alice-portraits\n  identity   "), text.stdout
    assert "  next apply nothing: it matches what is held (no change, nothing paid)\n" in text.stdout
    sent = [r for r in project.sim.requests()[mark:] if r["method"] != "GET"]
    assert sent == []  # explain only reads: nothing is created, uploaded or paid


def test_a_reverted_prompt_is_found_in_history_and_the_next_apply_copies_it_for_free(project: Project) -> None:
    converge(project)
    gens = project.root / GENS
    gens.write_text(gens.read_text().replace(PROMPT, "prompt: a photo of ohwx woman, golden hour"))
    assert project.apply().returncode == 0
    gens.write_text(gens.read_text().replace("prompt: a photo of ohwx woman, golden hour", PROMPT))
    found = explain(project, "Generation/alice-portraits")
    nxt = found["next_apply"]
    assert isinstance(nxt, dict)
    assert (nxt["action"], nxt["paid"], nxt["reason_kind"]) == ("copy", False, "run_copied")
    assert nxt["reason_fields"]["source"] == "history"
    held = found["held"]
    assert isinstance(held, list) and [h["source"] for h in held] == ["history"]
    assert held[0]["where"].startswith(f"{PORTRAITS}/history/")


def test_a_renamed_lora_model_finds_its_own_training_by_identity(project: Project) -> None:
    converge(project)
    alice = project.root / "manifests/alice.yaml"
    alice.write_text(alice.read_text().replace("name: alice-v1", "name: alice-v2"))
    gens = project.root / GENS
    gens.write_text(gens.read_text().replace("model: alice-v1", "model: alice-v2"))
    found = explain(project, "LoraModel/alice-v2")
    assert isinstance(found["task_name"], str) and found["task_name"].startswith("alice-v2-")
    held = found["held"]
    assert isinstance(held, list) and held and all(h["task_name"].startswith("alice-v1-") for h in held)
    nxt = found["next_apply"]
    assert isinstance(nxt, dict)
    assert (nxt["action"], nxt["paid"], nxt["reason_kind"]) == ("adopt", False, "trained_under_another_name")


def test_an_address_not_in_the_manifests_is_a_usage_error_naming_what_to_write(project: Project) -> None:
    converge(project)
    done = project.run("explain", "Generation/nope")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "Error: Generation/nope is not in the manifests (explain looks at what the manifests declare; "
        "`reconciler state list` shows what the state holds)\n"
    )
    done = project.run("explain", "nope")
    assert (done.returncode, done.stderr) == (
        2,
        "Error: no resource named nope in the manifests; write an address such as Generation/nope\n",
    )
