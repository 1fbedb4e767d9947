"""`reconciler explain`'s words, from values: the renderer is pure (what it is made of, where it is held, what is
paid), one row per case, the nothing-to-do row first."""

from __future__ import annotations

import json

from reconciler.observe.runcache import Holding, TrainingHolding
from reconciler.plan import reasons as r
from reconciler.plan.changes import ResourceChange
from reconciler.present.explain import Explanation, explain_json, explain_text

ID = "7a2f7e6f" + "0" * 56
FIELDS = {"type": "txt2img", "request": {"prompt": "a cat", "loras": [{"model_name": "m.safetensors"}]}, "extra": {}}
HERE = Holding(ID, "state", "Generation/cats", (("out/cats/cats-1.png", "a" * 64),), "out/cats")


def test_nothing_to_do_says_where_it_is_held_and_that_nothing_is_paid() -> None:
    text = explain_text(Explanation("Generation/cats", ID, FIELDS, (HERE,), None))
    assert text == (
        "Generation/cats\n"
        f"  identity   {ID}\n"
        '  made of    type: "txt2img"\n'
        '             request.prompt: "a cat"\n'
        '             request.loras[0].model_name: "m.safetensors"\n'
        "             extra: {}\n"
        "  held in    the state: 1 image of Generation/cats in out/cats\n"
        "  next apply nothing: it matches what is held (no change, nothing paid)\n"
    )


def test_a_paid_change_says_so_and_a_held_copy_says_it_is_free() -> None:
    paid = ResourceChange("Generation/cats", "create", r.NewGeneration(r.Shape(1, "txt2img", 512, 512)))
    e = Explanation("Generation/cats", ID, FIELDS, (), paid)
    assert e.pays
    assert explain_text(e).endswith(
        "  held in    nowhere yet: no state entry, history folder, outputs remote or training holds it\n"
        "  next apply create (pays): 1 image, txt2img 512×512\n"
    )
    copied = ResourceChange(
        "Generation/cats", "copy", r.RunCopied("history", "Generation/cats", 1, "out/cats/history/7a2f")
    )
    data = json.loads(explain_json(Explanation("Generation/cats", ID, FIELDS, (HERE,), copied)))
    assert data["next_apply"]["paid"] is False and data["next_apply"]["reason_kind"] == "run_copied"
    assert data["held"][0]["files"] == [{"path": "out/cats/cats-1.png", "sha256": "a" * 64}]


def test_an_identity_not_known_yet_names_the_models_it_waits_for() -> None:
    e = Explanation("Generation/cats", None, FIELDS, (), None, waits_for=("alice-v1",))
    assert "  identity   known after apply: LoraModel/alice-v1 has no trained model yet\n" in explain_text(e)


def test_a_model_lists_the_trainings_of_its_identity_under_any_name() -> None:
    held = (
        TrainingHolding(ID, "state", "LoraModel/alice-v1", "alice-v1-7a2f7e6f", "t-1", "m.safetensors", True),
        TrainingHolding(ID[:8], "account", "alice-v1-7a2f7e6f", "alice-v1-7a2f7e6f", "t-1", None, False),
    )
    text = explain_text(Explanation("LoraModel/alice-v2", ID, {"images": [["a" * 64, "smiling"]]}, held, None))
    assert "  task name" not in text
    assert "  made of    images: 1 image by content hash, 1 with a caption, in order\n" in text
    assert (
        "  held in    the state: training alice-v1-7a2f7e6f (LoraModel/alice-v1), trained, model m.safetensors\n"
        "             the account's trainings: training alice-v1-7a2f7e6f, in flight\n"
    ) in text
