"""Checks across documents: duplicate names, references to a Dataset or LoraModel, a LoRA file name that is
one of ours, and a training dataset's image count and captions."""

from __future__ import annotations

from typing import Any

from reconciler.load.drafts import Collector, Draft
from reconciler.load.schema import KINDS, LORA_FILE_SUFFIXES, MAX_TRAINING_IMAGES
from reconciler.load.words import describe, reference_hint


def cross_checks(drafts: list[Draft], out: Collector) -> None:
    named: dict[str, dict[str, Draft]] = {kind: {} for kind in KINDS}
    for draft in drafts:
        if draft.name is None:
            continue
        first = named[draft.kind].get(draft.name)
        if first is None:
            named[draft.kind][draft.name] = draft
            continue
        pos = first.doc.value_pos(("metadata", "name"))
        out.draft(
            draft,
            ("metadata", "name"),
            f"duplicate name: {draft.address} is already defined at {first.file}:{pos.line}:{pos.col}",
        )
    datasets, models = named["Dataset"], named["LoraModel"]
    checked: set[tuple[str, int]] = set()
    counted: set[str] = set()
    for draft in drafts:
        spec = draft.raw_spec
        if draft.kind == "LoraModel" and isinstance(spec.get("dataset"), str):
            dataset = datasets.get(spec["dataset"])
            if dataset is None and not out.incomplete:
                hint = reference_hint(spec["dataset"], datasets, "Dataset")
                out.draft(draft, ("spec", "dataset"), f"no Dataset named {describe(spec['dataset'])}{hint}")
            elif dataset is not None:
                _training_images(draft, dataset, checked, counted, out)
        if draft.kind == "Generation" and isinstance(spec.get("loras"), list):
            for index, ref in enumerate(spec["loras"]):
                _lora_file_not_ours(draft, index, ref, models, out)
                model = ref.get("model") if isinstance(ref, dict) else None
                if isinstance(model, str) and model not in models and not out.incomplete:
                    hint = reference_hint(ref["model"], models, "LoraModel")
                    out.draft(
                        draft, ("spec", "loras", index, "model"), f"no LoraModel named {describe(ref['model'])}{hint}"
                    )


def _lora_file_not_ours(draft: Draft, index: int, ref: Any, models: dict[str, Draft], out: Collector) -> None:
    """`loras: [{model_name: me-v1}]` where me-v1 is our LoraModel: it would generate without the LoRA."""
    name = ref.get("model_name") if isinstance(ref, dict) else None
    if not isinstance(name, str):
        return
    stem = name.strip()
    for suffix in LORA_FILE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    stem = stem.removeprefix("LoraModel/")
    if stem in models:
        path = ("spec", "loras", index, "model_name")
        out.replace(
            draft,
            path,
            f"{describe(name)} is the LoraModel {stem} of these manifests, not a Novita file name; "
            f"did you mean `model: {stem}`?",
            at_key=True,
        )


def _training_images(
    model: Draft, dataset: Draft, checked: set[tuple[str, int]], counted: set[str], out: Collector
) -> None:
    """A dataset used for training: 1 to 50 images; for style training, a caption on each."""
    count = len(dataset.images)
    too_many = count > MAX_TRAINING_IMAGES or (count == 0 and dataset.files_ok)
    if too_many and dataset.name is not None and dataset.name not in counted and dataset.valid is not None:
        counted.add(dataset.name)
        out.draft(
            dataset,
            ("spec", "images"),
            f"{count} images after removing duplicates, but {model.address} trains on it and "
            f"Novita accepts 1 to {MAX_TRAINING_IMAGES}",
            at_key=True,
        )
    if model.raw_spec.get("type") != "style":
        return
    missing: dict[int, list[str]] = {}
    for image, index in dataset.images:
        if image.caption is None:
            missing.setdefault(index, []).append(image.display)
    for index, names in sorted(missing.items()):
        if (str(dataset.name), index) in checked:
            continue
        checked.add((str(dataset.name), index))
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        out.draft(
            dataset,
            ("spec", "images", index),
            f"no caption for {shown}, but {model.address} is style training, which needs a caption on every "
            "image (add `caption:` or a sidecar <image>.txt)",
        )
