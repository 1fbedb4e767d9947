"""A proxy in front of the simulator that rewrites chosen answers into hostile ones (a real socket)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

# (method, path, status, body) -> (status, body, extra headers) or None to pass the answer through
Rewrite = Callable[[str, str, int, bytes], "tuple[int, bytes, dict[str, str]] | None"]


@contextmanager
def hostile_proxy(upstream: str, rewrite: Rewrite) -> Iterator[str]:
    client = httpx.Client(base_url=upstream, timeout=30)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            answer = client.request(self.command, self.path, content=body, headers=headers)
            status, content, extra = answer.status_code, answer.content, {}
            changed = rewrite(self.command, self.path, status, content)
            if changed is not None:
                status, content, extra = changed
            self.send_response(status)
            self.send_header("Content-Type", extra.pop("Content-Type", answer.headers.get("content-type", "")))
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        client.close()
