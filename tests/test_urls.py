"""How a URL is shown: a password in it (user:password@ or ?password=) never is."""

from __future__ import annotations

import pytest

from reconciler.urls import redact_url_password, url_password


@pytest.mark.parametrize(
    ("url", "shown", "password"),
    [
        ("postgresql://bob@db:5432/loras", "postgresql://bob@db:5432/loras", None),
        ("postgresql://bob:s%40cret@db:5432/loras", "postgresql://bob:***@db:5432/loras", "s@cret"),
        (
            "postgresql://db/loras?user=bob&password=pw1&sslmode=require",
            "postgresql://db/loras?user=bob&password=***&sslmode=require",
            "pw1",
        ),
        ("s3://bucket/prefix", "s3://bucket/prefix", None),
        ("state/state.json", "state/state.json", None),
        ("postgresql://bob:p:w@x@db/loras", "postgresql://bob:***@db/loras", "p:w@x"),
    ],
)
def test_redaction(url: str, shown: str, password: str | None) -> None:
    assert redact_url_password(url) == shown
    assert url_password(url) == password
    if password:
        assert password not in redact_url_password(url)
