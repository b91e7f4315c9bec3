"""Per-key rate limits: requests per minute and tokens per minute over a sliding window. The windows live
in one Serve deployment, so the limits hold however many gateway replicas there are."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import Protocol

import msgspec
from ray.serve.handle import DeploymentHandle

WINDOW_S = 60.0


class Verdict(msgspec.Struct, frozen=True, array_like=True):
    """Admitted, or refused with the seconds after which a retry can succeed (None: it never can)."""

    admitted: bool
    retry_after_s: float | None = None
    reason: str = ""


ADMITTED = Verdict(True)


class SlidingWindows:
    """Plain bookkeeping, testable without Ray: per owner, request times and (time, tokens) charges."""

    def __init__(self, *, requests_per_minute: int, tokens_per_minute: int) -> None:
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        self._requests: dict[str, deque[float]] = defaultdict(deque)
        self._tokens: dict[str, deque[tuple[float, int]]] = defaultdict(deque)

    def admit_request(self, owner: str, now: float) -> Verdict:
        if not self.rpm:
            return ADMITTED
        times = self._requests[owner]
        _expire(times, now, key=lambda t: t)
        if len(times) >= self.rpm:
            return Verdict(False, times[0] + WINDOW_S - now, f"Rate limit reached: {self.rpm} requests per minute.")
        times.append(now)
        return ADMITTED

    def admit_tokens(self, owner: str, wanted: int, now: float) -> Verdict:
        """Refuses while the last minute's tokens are at the limit; `wanted` alone over it can never pass."""
        if not self.tpm:
            return ADMITTED
        if wanted > self.tpm:
            return Verdict(False, None, f"Request too large: {wanted} tokens asked, the limit is {self.tpm} per minute.")
        charges = self._tokens[owner]
        _expire(charges, now, key=lambda c: c[0])
        used = sum(tokens for _, tokens in charges)
        if used >= self.tpm:
            return Verdict(False, charges[0][0] + WINDOW_S - now, f"Rate limit reached: {self.tpm} tokens per minute.")
        return ADMITTED

    def charge_tokens(self, owner: str, tokens: int, now: float) -> None:
        if self.tpm and tokens > 0:
            self._tokens[owner].append((now, tokens))


def _expire(window: deque, now: float, *, key) -> None:
    while window and key(window[0]) <= now - WINDOW_S:
        window.popleft()


class Limiter(Protocol):
    async def admit_request(self, owner: str) -> Verdict: ...

    async def admit_tokens(self, owner: str, wanted: int) -> Verdict: ...

    async def charge_tokens(self, owner: str, tokens: int) -> None: ...


class LocalLimiter:
    """The windows in this process: the limits Serve deployment, or a lone gateway (`create_app` in tests)."""

    def __init__(self, requests_per_minute: int, tokens_per_minute: int) -> None:
        self.windows = SlidingWindows(requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute)

    async def admit_request(self, owner: str) -> Verdict:
        return self.windows.admit_request(owner, time.monotonic())

    async def admit_tokens(self, owner: str, wanted: int) -> Verdict:
        return self.windows.admit_tokens(owner, wanted, time.monotonic())

    async def charge_tokens(self, owner: str, tokens: int) -> None:
        self.windows.charge_tokens(owner, tokens, time.monotonic())


class ServeLimiter:
    """The shared windows of the limits deployment, through its handle."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    async def admit_request(self, owner: str) -> Verdict:
        return await self.handle.admit_request.remote(owner)

    async def admit_tokens(self, owner: str, wanted: int) -> Verdict:
        return await self.handle.admit_tokens.remote(owner, wanted)

    async def charge_tokens(self, owner: str, tokens: int) -> None:
        await self.handle.charge_tokens.remote(owner, tokens)
