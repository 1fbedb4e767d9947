"""Property: whatever JSON arrives, the API answers 200 or a 4xx with Novita's error body, never a crash."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_helpers import generation_body, make_sim, training_body

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
SIM = make_sim()
ASSET = SIM.upload()


def _check(response: Any) -> None:
    assert response.status_code in (200, 400, 429), response.text
    if response.status_code != 200:
        body = response.json()
        assert set(body) == {"code", "reason", "message", "metadata"} and body["code"] == response.status_code


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(sorted(training_body(["x"]))), value=JSON, kind=st.sampled_from(["subject", "style"]))
def test_training_fields_never_crash(field: str, value: Any, kind: str) -> None:
    body = training_body([ASSET], kind=kind)
    body[field] = value
    _check(SIM.post(f"/v3/training/{kind}", body))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(sorted(generation_body("img2img")["request"])), value=JSON,
       kind=st.sampled_from(["txt2img", "img2img"]))  # fmt: skip
def test_generation_fields_never_crash(field: str, value: Any, kind: str) -> None:
    body = generation_body(kind)
    body["request"][field] = value
    SIM.account.config.ipm_txt2img = SIM.account.config.ipm_img2img = 0
    _check(SIM.post(f"/v3/async/{kind}", body))


@settings(max_examples=100, deadline=None)
@given(body=JSON)
def test_whole_bodies_never_crash(body: Any) -> None:
    for path in ("/v3/assets/training_dataset", "/v3/training/subject", "/v3/async/txt2img"):
        _check(SIM.post(path, body))
