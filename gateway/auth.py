"""API keys, the caller's identity and per-key request rates. With `API_KEYS` or `API_KEYS_FILE` set,
every route but `/health` needs `Authorization: Bearer <key>`; the key's name owns what the caller creates."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

from litestar import Request
from litestar.types import ASGIApp, Receive, Scope, Send

from engines.core.errors import AuthenticationError, RateLimitError
from engines.core.settings import Settings, SettingsError
from gateway.limits import Limiter
from gateway.routes.console import is_console_path

OPEN_OWNER = "local"
"""The owner of everything while the platform runs without keys."""
OPEN_PATHS = ("/health", "/openapi.json")
"""Besides the web console's pages and assets (`is_console_path`)."""
_OWNER_KEY = "owner"
_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


class KeyRing:
    """Maps each key to its owner's name; look-ups compare in constant time."""

    def __init__(self, owners_by_key: dict[str, str]) -> None:
        self._entries = [(key.encode(), owner) for key, owner in owners_by_key.items()]

    def owner_for(self, key: str) -> str | None:
        found = None
        for known, owner in self._entries:
            if hmac.compare_digest(known, key.encode()):
                found = owner
        return found

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing | None:
        """None when no keys are configured: the platform is open."""
        entries = [item for item in settings.api_keys.split(",") if item.strip()]
        variable = "API_KEYS"
        if settings.api_keys_file:
            variable = "API_KEYS_FILE"
            try:
                lines = Path(settings.api_keys_file).read_text().splitlines()
            except OSError as exc:
                raise SettingsError(f"Invalid setting API_KEYS_FILE={settings.api_keys_file!r}: {exc}") from None
            entries += [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not entries:
            return None
        owners: dict[str, str] = {}
        for entry in entries:
            name, _, key = entry.strip().rpartition("=")
            key = key.strip()
            name = name.strip() or f"key-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
            if not key or not _NAME.match(name):
                raise SettingsError(
                    f"Invalid setting {variable}: each entry is 'key' or 'name=key' (name: letters, digits, _ or -)"
                )
            if key in owners:
                raise SettingsError(f"Invalid setting {variable}: a key is listed twice")
            owners[key] = name
        return cls(owners)


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or is_console_path(path)


def caller(request: Request) -> str:
    """The owner the request acts for."""
    return scope_caller(request.scope)


def scope_caller(scope: Scope) -> str:
    """The owner a request's scope acts for: the name of its key (never the key), or the open platform's owner."""
    return scope.get("state", {}).get(_OWNER_KEY, OPEN_OWNER)


class AuthMiddleware:
    def __init__(self, app: ASGIApp, keys: KeyRing | None) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.keys is None or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if not token or scheme.lower() != "bearer":
            raise AuthenticationError(
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
        owner = self.keys.owner_for(token.strip())
        if owner is None:
            shown = f"{token[:3]}***{token[-4:]}" if len(token) > 8 else "***"
            raise AuthenticationError(f"Incorrect API key provided: {shown}.")
        scope.setdefault("state", {})[_OWNER_KEY] = owner
        await self.app(scope, receive, send)


class RateLimitMiddleware:
    """Requests per minute per owner; runs after AuthMiddleware has named the owner."""

    def __init__(self, app: ASGIApp, limiter: Limiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not is_open(scope["path"]):
            owner = scope.get("state", {}).get(_OWNER_KEY, OPEN_OWNER)
            verdict = await self.limiter.admit_request(owner)
            if not verdict.admitted:
                raise RateLimitError(verdict.reason, retry_after_s=verdict.retry_after_s)
        await self.app(scope, receive, send)
