"""Whatever the manifests hold, loading them raises ManifestError or succeeds: never anything else."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import ManifestError
from reconciler.load import load_manifests

from .manifest_helpers import DATASET, GENERATION, MODEL, image_bytes, write

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", "1e-4", "../img/*.jpg", "../../x", "ds", "lm", "img2img", "style", "/etc/passwd"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _load(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write(root, {"img/a.jpg": image_bytes(), "m/ds.yaml": DATASET, "m/x.yaml": text})
        with contextlib.suppress(ManifestError):
            load_manifests([Path("m")], root)


@_SETTINGS
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    _load(text)


@_SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    _load(data)


def _mutate(document: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    target = document
    for key in path[:-1]:
        nested = target.get(key)
        if not isinstance(nested, dict):
            nested = target[key] = {}
        target = nested
    target[path[-1]] = value
    return document


_FIELDS = [
    ["kind"],
    ["apiVersion"],
    ["metadata"],
    ["metadata", "name"],
    ["spec"],
    ["spec", "images"],
    ["spec", "type"],
    ["spec", "dataset"],
    ["spec", "width"],
    ["spec", "expert_setting"],
    ["spec", "expert_setting", "learning_rate"],
    ["spec", "expert_setting", "lora_r"],
    ["spec", "components"],
    ["spec", "loras"],
    ["spec", "init_image"],
    ["spec", "output"],
    ["spec", "hires_fix"],
    ["spec", "strength"],
    ["spec", "sampler_name"],
]


@_SETTINGS
@given(
    st.sampled_from([DATASET, MODEL, GENERATION]),
    st.lists(st.tuples(st.sampled_from(_FIELDS), values), min_size=1, max_size=3),
)
def test_random_field_values(base: str, changes: list[tuple[list[str], Any]]) -> None:
    document = yaml.safe_load(base)
    for path, value in changes:
        document = _mutate(document, path, value)
    try:
        text = yaml.safe_dump(document, allow_unicode=True)
    except yaml.YAMLError:
        return
    _load(text.replace("name: ds", "name: other"))
