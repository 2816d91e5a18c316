"""What keeps the ward app safe by default (docs/ward.md, "Security model").

* **Cross-site requests**: every form post carries a token, the HMAC of a random cookie
  (``SameSite=Strict``, ``HttpOnly``) under the data folder's secret key; a post without it, or
  from another origin (``Origin``, ``Sec-Fetch-Site``), is refused (403).
* **DNS rebinding**: on loopback the app answers only to ``127.0.0.1``, ``localhost`` and
  ``[::1]`` at its own port.
* **The access key**: when set (always, off loopback), every page but the sign-in asks for a
  cookie that only the key gives.
* **Headers**: a strict Content-Security-Policy (scripts, styles and images from the app only;
  no inline script or style, no frames, forms post only to the app), no sniffing, no referrer,
  and no caching of patient pages.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

CSRF_COOKIE = "itb_ward_csrf"
AUTH_COOKIE = "itb_ward_key"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), usb=(), serial=()",
}


def secret_key(data_dir: Path) -> bytes:
    """The data folder's secret (32 random bytes in ``secret.key``, made on first use, 0600)."""
    path = Path(data_dir) / "secret.key"
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    return key


def new_cookie_value() -> str:
    return secrets.token_urlsafe(32)


def csrf_token(secret: bytes, cookie: str) -> str:
    return hmac.new(secret, b"csrf:" + cookie.encode("ascii", "replace"), hashlib.sha256).hexdigest()


def same_text(a: str, b: str) -> bool:
    """``a == b`` in constant time (any text: what a client sends need not be ASCII)."""
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


def csrf_ok(secret: bytes, cookie: str | None, token: str | None) -> bool:
    if not cookie or not token:
        return False
    return same_text(csrf_token(secret, cookie), token)


def same_origin(origin: str | None, fetch_site: str | None, host_url: str) -> bool:
    """False for a request the browser says came from another site."""
    if fetch_site and fetch_site not in ("same-origin", "none"):
        return False
    return not (origin and origin != "null" and origin.rstrip("/") != host_url.rstrip("/"))


def auth_value(secret: bytes, access_key: str) -> str:
    """The cookie the access key gives (it changes when the key changes)."""
    digest = hashlib.sha256(access_key.encode("utf-8")).digest()
    return hmac.new(secret, b"auth:" + digest, hashlib.sha256).hexdigest()


def key_ok(given: str, access_key: str) -> bool:
    return hmac.compare_digest(hashlib.sha256(given.encode("utf-8")).digest(),
                               hashlib.sha256(access_key.encode("utf-8")).digest())


def loopback_hosts(port: int, host: str = "127.0.0.1") -> set[str]:
    """The Host headers a loopback server on ``host`` answers to."""
    bound = f"[{host}]" if ":" in host and not host.startswith("[") else host
    names = ("127.0.0.1", "localhost", "[::1]", bound)
    return {f"{n}:{port}" for n in names} | ({*names} if port == 80 else set())
