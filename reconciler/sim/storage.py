"""Presigned-URL signing and checking, S3-style XML errors. Pure: the HTTP layer supplies time and requests."""

from __future__ import annotations

import calendar
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode
from xml.sax.saxutils import escape

UPLOAD_PREFIX = "/s3/training-dataset/"
OUTPUT_PREFIX = "/s3/output-image/"
CREDENTIAL = "ASIASIMULATOR0000000/sim/ap-southeast-1/s3/aws4_request"


def amz_date(ts: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))


def parse_amz_date(text: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(text, "%Y%m%dT%H%M%SZ")))
    except (ValueError, TypeError):
        return None


def _signature(secret: str, method: str, path: str, date: str, expires: int) -> str:
    message = f"{method}\n{path}\n{date}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def presign(secret: str, method: str, base_url: str, path: str, now: float, expires: int) -> str:
    """A presigned-style URL for `method path`, valid `expires` seconds from `now`."""
    date = amz_date(now)
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": CREDENTIAL,
        "X-Amz-Date": date,
        "X-Amz-Expires": str(expires),
        "X-Amz-SignedHeaders": "host",
        "x-id": "PutObject" if method == "PUT" else "GetObject",
        "X-Amz-Signature": _signature(secret, method, path, date, expires),
    }
    return f"{base_url}{path}?{urlencode(query)}"


@dataclass(frozen=True)
class S3Error:
    """An S3-style refusal: HTTP status, Code and Message of the XML body."""

    status: int
    code: str
    message: str
    extra: tuple[tuple[str, str], ...] = ()

    def xml(self, request_id: str) -> bytes:
        fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in self.extra)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{escape(self.message)}</Message>{fields}"
            f"<RequestId>{request_id}</RequestId><HostId>c2ltdWxhdG9y</HostId></Error>"
        ).encode()


def check_request(
    secret: str,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    now: float,
) -> S3Error | None:
    """What S3 would say to this presigned request, in S3's order of checks; None if it is allowed."""
    if "authorization" in headers:
        return S3Error(
            400,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string "
            "parameter or the Authorization header should be specified",
            (("ArgumentName", "Authorization"), ("ArgumentValue", "<redacted>")),
        )
    if method == "PUT" and "content-length" not in headers and "chunked" in headers.get("transfer-encoding", ""):
        return S3Error(
            501,
            "NotImplemented",
            "A header you provided implies functionality that is not implemented",
            (("Header", "Transfer-Encoding"),),
        )
    date, expires_text, signature = query.get("X-Amz-Date"), query.get("X-Amz-Expires"), query.get("X-Amz-Signature")
    if not date or not expires_text or not signature:
        return S3Error(403, "AccessDenied", "Query-string authentication requires the Signature, Expires and Date")
    try:
        expires = int(expires_text)
    except ValueError:
        return S3Error(400, "AuthorizationQueryParametersError", "X-Amz-Expires should be a number")
    expected = _signature(secret, method, path, date, expires)
    if not hmac.compare_digest(expected, signature):
        return S3Error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )
    signed_at = parse_amz_date(date)
    if signed_at is None or now > signed_at + expires:
        return expired(expires, (signed_at or 0) + expires, now)
    return None


def expired(expires: int, expired_at: float, now: float) -> S3Error:
    return S3Error(
        403,
        "AccessDenied",
        "Request has expired",
        (
            ("X-Amz-Expires", str(expires)),
            ("Expires", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expired_at))),
            ("ServerTime", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))),
        ),
    )
