"""Who may use the page: tokens, Host and Origin checks, security headers.

A bind to anything but 127.0.0.1/localhost/::1 requires a token on every HTTP
request and socket (query ``?token=``, then a same-site cookie, then an
``Authorization: Bearer`` header); loopback binds only answer requests naming a
loopback Host (no DNS rebinding); sockets from another Origin are refused.
"""

from __future__ import annotations

import hmac
import secrets
import socket

from aiohttp import web

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
COOKIE = "auralize_token"

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'"),
}


def token_required(host: str) -> bool:
    """Whether a bind address needs a token (everything except 127.0.0.1, localhost, ::1)."""
    return host not in LOOPBACK_HOSTS


def new_token() -> str:
    return secrets.token_urlsafe(18)


def display_url(host: str, port: int, token: str | None) -> str:
    """The URL a person should open for a server bound to ``host:port``."""
    shown = host
    if host in ("0.0.0.0", "::", ""):
        shown = socket.gethostname() or "localhost"
    if ":" in shown:
        shown = f"[{shown}]"
    url = f"http://{shown}:{port}/"
    return url + (f"?token={token}" if token else "")


def loopback_host(host: str) -> bool:
    """Whether a Host header names this machine's loopback (any port: SSH tunnels)."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if host.startswith("["):
        name = host[1:host.index("]")] if "]" in host else host
    return name in LOOPBACK_HOSTS


def token_ok(request, token: str | None) -> tuple[bool, bool]:
    """(authorised, came in the query) for a request to a server guarded by ``token``."""
    if token is None:
        return True, False
    given = request.query.get("token")
    if given is not None:
        return hmac.compare_digest(given.encode(), token.encode()), True
    cookie = request.cookies.get(COOKIE)
    if cookie is not None:
        return hmac.compare_digest(cookie.encode(), token.encode()), False
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return hmac.compare_digest(auth[7:].encode(), token.encode()), False
    return False, False


def guard(token: str | None):
    """The aiohttp middleware that applies these rules and sets the security headers.

    A token that came in the query is set as an HTTP-only same-site cookie, so the
    page's later requests and its socket carry it without it showing in their URLs.
    """

    @web.middleware
    async def _guard(request, handler):
        ok, in_query = token_ok(request, token)
        if not ok:
            raise web.HTTPForbidden(text="auralize: a valid token is required\n")
        if token is None and not loopback_host(request.host or ""):
            raise web.HTTPForbidden(text="auralize: unexpected Host header\n")
        origin = request.headers.get("Origin")
        if (origin is not None and request.path == "/ws"
                and origin.split("://", 1)[-1] != request.host):
            raise web.HTTPForbidden(text="auralize: cross-origin socket refused\n")
        response = await handler(request)
        if not response.prepared:
            for name, value in _SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            if in_query and token is not None:
                response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
        return response

    return _guard
