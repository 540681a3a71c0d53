"""What every request passes before a route sees it: size, host, origin, and response headers.

Three ASGI middlewares, outermost first (``install_guards``):

* ``HostAndOrigin``: the ``Host`` header must name this room (loopback names, and the LAN
  addresses under ``--lan``), so a DNS-rebinding page on another site cannot drive the API of
  a room on 127.0.0.1. A state-changing request (anything but GET/HEAD/OPTIONS) and every
  WebSocket upgrade must come from this room's own pages: its ``Origin`` must be this very
  scheme, host and port. ``SameSite=Strict`` cookies do not stop another port of the same
  host (a different origin, but the same *site*), a form post from there, or a WebSocket.
  Requests without ``Origin`` (curl, scripts) are let through unless the browser says they
  are cross-site (``Sec-Fetch-Site``): they carry no one's cookies by accident.
* ``BodyLimit``: each route reads at most so many bytes (``limit_for``), checked on
  ``Content-Length`` and again while the body streams in, answered 413 before parsing
  (an upload's names its size and the limit: "the upload is 41 MB; the limit is 30 MB").
* ``SecurityHeaders``: a CSP that allows only this origin's own scripts, styles and
  connections, no framing (``frame-ancestors 'none'``, ``X-Frame-Options``), ``nosniff``, no
  referrer.

Hand-written rather than Starlette's ``TrustedHostMiddleware`` because the Origin check needs
the same host list and the request's own port, and one place says what the room trusts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI

from web.vrm import MAX_VRM_BYTES, megabytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

KIB = 1024
MIB = 1024 * KIB
BODY_LIMITS: tuple[tuple[str, int], ...] = (
    # An avatar's VRM model, the raw file (``web.vrm_api``); "*" is one path segment.
    ("/api/avatars/*/vrm", MAX_VRM_BYTES),
    ("/api/offer", 64 * KIB),  # an SDP offer is 3-10 KiB; room for many codecs
    ("/api/avatars", 64 * KIB),  # persona, greetings and settings, each bounded too
    ("/api/voices/preview", 4 * KIB),
)
DEFAULT_BODY_LIMIT = 16 * KIB
"""Sign-up, sign-in, hang-up, memory edits: small JSON."""

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; font-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), geolocation=(), microphone=(self)"),
)


_PATH = re.compile(r"(?<![\w/])(?:/[\w.@+-]+)+/(?=[\w.@+-])|(?<![\w/])[A-Za-z]:\\(?:[\w.@+-]+\\)+")


def without_paths(text: str) -> str:
    """``text`` with the folders of any file path left out ("/srv/x/lumina.toml" -> "lumina.toml").

    Error messages name the file that is wrong, which helps; where it lives on the server
    tells a stranger about the machine and does not help them.
    """
    return _PATH.sub("", text)


def limit_for(path: str) -> int:
    """The most bytes a request to ``path`` may send."""
    for prefix, limit in BODY_LIMITS:
        if "*" in prefix:
            parts, pattern = path.split("/"), prefix.split("/")
            if len(parts) == len(pattern) and all(
                p == want or (want == "*" and p) for p, want in zip(parts, pattern, strict=True)
            ):
                return limit
        elif path == prefix or path.startswith(prefix + "/"):
            return limit
    return DEFAULT_BODY_LIMIT


def too_large(limit: int, sent: int | None = None) -> str:
    """The 413's message: the limit, and for uploads (limits of a MiB or more) the size sent."""
    if limit < MIB:
        return f"Request too large: at most {limit // KIB} KiB here."
    if sent is None:
        return f"Too large: the upload is over the limit of {megabytes(limit)}."
    return f"Too large: the upload is {megabytes(sent)}; the limit is {megabytes(limit)}."


def hostname(host_header: str) -> str:
    """The host part of a ``Host`` header or URL netloc, lower-case, without port or []."""
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:7860
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


async def _refuse(scope: Scope, send: Send, status: int, detail: str) -> None:
    if scope["type"] == "websocket":
        # Closing before accepting makes the server answer the upgrade with 403.
        await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
        return
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HostAndOrigin:
    """Refuses requests for other hosts (400) and cross-origin state changes (403).

    Args:
        app: the app to guard.
        hosts: host names this room answers to (no ports).
    """

    def __init__(self, app: ASGIApp, hosts: Iterable[str]):
        self.app = app
        self.hosts = frozenset(h.lower().strip("[]") for h in hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on only for this room's hosts, and same-origin state changes."""
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        host = _header(scope, b"host") or ""
        if hostname(host) not in self.hosts:
            return await _refuse(scope, send, 400, "This room does not answer to that host name.")
        unsafe = scope["type"] == "websocket" or scope.get("method") not in SAFE_METHODS
        if unsafe and not self._same_origin(scope, host):
            return await _refuse(
                scope, send, 403, "Cross-site request refused: use the room's own page."
            )
        await self.app(scope, receive, send)

    def _same_origin(self, scope: Scope, host: str) -> bool:
        origin = _header(scope, b"origin")
        if origin is None:
            return _header(scope, b"sec-fetch-site") not in ("cross-site", "same-site")
        parts = urlsplit(origin)
        scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", ""), scope.get("scheme"))
        return parts.scheme == scheme and parts.netloc.lower() == host.lower()


class BodyLimit:
    """Answers 413 to a request body over its route's limit, before anything parses it."""

    def __init__(self, app: ASGIApp, limit: Callable[[str], int] = limit_for):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on while its body stays within the route's limit."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit(scope.get("path", ""))
        detail = too_large(limit)
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            sent = int(length) if length.isdigit() else None
            return await _refuse(scope, send, 413, too_large(limit, sent))
        received = 0
        started = refused = False

        async def counted() -> Message:
            # Over the limit: answer 413 now and tell the app the client left. (Raising
            # instead would be caught by FastAPI's body parsing and turned into a 400.)
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started and not refused:
                        refused = True
                        await _refuse(scope, send, 413, detail)
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is already out; what the app says after it goes nowhere
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, tracked)


class SecurityHeaders:
    """Adds the CSP, framing, sniffing and referrer headers to every HTTP response."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to its response."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", ())}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


def install_guards(app: FastAPI, hosts: Iterable[str]) -> None:
    """Wrap ``app`` in the guards; the last added runs first (Starlette's order)."""
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit)
    app.add_middleware(HostAndOrigin, hosts=list(hosts))
