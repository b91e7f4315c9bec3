"""One platform with API keys, two gateway replicas, a per-key rate limit and a bounded queue, shared by the
tests that need keys (the web console, reliability): started once for this folder, stopped after it."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.e2e.platform import Platform

ALICE, BOB, CAROL = "sk-alice-reliability-1", "sk-bob-reliability-2", "sk-carol-reliability-3"
DAVE, ERIN = "sk-dave-console-4", "sk-erin-console-5"
"""The console's tests sign in as dave; erin owns what dave must not see."""
RPM = 150


@pytest.fixture(scope="package")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("keyed")
    platform = Platform(
        root / "data",
        root / "platform.log",
        API_KEYS=f"alice={ALICE},bob={BOB},carol={CAROL},dave={DAVE},erin={ERIN}",
        GATEWAY_REPLICAS="2",
        RATE_LIMIT_RPM=str(RPM),
        MAX_ONGOING_REQUESTS="4",
        MAX_QUEUED_REQUESTS="4",
    )
    platform.start()
    yield platform
    if platform.process is not None and platform.process.poll() is None:
        assert platform.stop() == 0
        assert platform.wait_gone() == []


def sdk(platform: Platform, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{platform.url}/v1", api_key=key, max_retries=0, timeout=120)
