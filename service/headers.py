"""Security headers on every response (OWASP ASVS 14.4): a Content-Security-Policy that allows
only the service's own files and no framing, nosniff, no referrer to other sites, no caching of
anything but the static files and the release channel, HSTS over https. An Evidently report
(inline scripts) gets a sandboxed policy of its own; a route that sets its own policy keeps it."""

from __future__ import annotations

import re

POLICY = ("default-src 'self'; base-uri 'none'; object-src 'none'; form-action 'self'; "
          "frame-ancestors 'none'")
# the reports are Evidently's self-contained pages: inline scripts and styles, data: images and
# fonts; sandboxed (an opaque origin: no cookie, no call to the service as the user)
REPORT_POLICY = ("sandbox allow-scripts allow-popups; default-src 'none'; "
                 "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
                 "img-src data: blob:; font-src data:; frame-ancestors 'none'")
REPORT_PATH = re.compile(r"/drift/[^/]+/[^/]+\.html")
CACHED_PREFIXES = ("/static/", "/releases/")  # public files: the browser and proxies may keep
HSTS = "max-age=31536000; includeSubDomains"

_ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
           (b"x-frame-options", b"DENY"), (b"cross-origin-opener-policy", b"same-origin")]


class SecurityHeaders:
    """ASGI middleware adding the headers above to each response's start."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        added = headers_for(scope["path"], https=scope.get("scheme") == "https")

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *((n, v) for n, v in added if n not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def headers_for(path: str, *, https: bool) -> list[tuple[bytes, bytes]]:
    """The headers a response to `path` gets unless it set them itself."""
    report = REPORT_PATH.fullmatch(path) is not None
    headers = [*_ALWAYS, (b"content-security-policy",
                          (REPORT_POLICY if report else POLICY).encode())]
    if not path.startswith(CACHED_PREFIXES):
        headers.append((b"cache-control", b"no-store"))
    if https:
        headers.append((b"strict-transport-security", HSTS.encode()))
    return headers
