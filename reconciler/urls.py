"""Pure: how a URL is ever shown. A password in it (`postgresql://user:secret@host/db`) shows as `***`."""

from __future__ import annotations

from urllib.parse import unquote


def redact_url_password(url: str) -> str:
    """`postgresql://user:secret@host/db` → `postgresql://user:***@host/db`; a `password=` parameter too."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    path, q, query = path.partition("?")
    if q:
        query = "&".join(
            f"{k}=***" if k.lower() in ("password", "secret", "token") else f"{k}{eq}{v}"
            for k, eq, v in (part.partition("=") for part in query.split("&"))
        )
    return f"{scheme}://{userinfo}{at}{host}{slash}{path}{q}{query}"


def url_password(url: str) -> str | None:
    """The password a URL embeds (decoded), to scrub it from a driver's message; None when there is none."""
    _, sep, rest = url.partition("://")
    authority, _, tail = rest.partition("/")
    userinfo, at, _ = authority.rpartition("@")
    if sep and at and ":" in userinfo:
        return unquote(userinfo.split(":", 1)[1]) or None
    for part in tail.partition("?")[2].split("&"):
        key, _, value = part.partition("=")
        if key.lower() == "password" and value:
            return unquote(value)
    return None
