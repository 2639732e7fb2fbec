"""Log events never print key-shaped strings, whatever a caller puts in them."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest
import structlog

from core.logs import MASK, configure, get_logger, redact


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield None
    structlog.reset_defaults()


def test_json_log_masks_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    canary_key = "0x" + secrets.token_hex(32)
    canary_openai = "sk-" + secrets.token_urlsafe(24)
    configure("DEBUG", json=True)
    get_logger("test").debug("order_context", key=canary_key,
                             nested={"auth": f"Bearer {secrets.token_urlsafe(24)}"},
                             note=f"model key {canary_openai} used")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    event = json.loads(line)
    assert canary_key not in line
    assert canary_openai not in line
    assert event["key"] == MASK
    assert MASK in event["note"]
    assert event["nested"]["auth"] == MASK


def test_level_filters(capsys: pytest.CaptureFixture[str]) -> None:
    configure("WARNING", json=True)
    log = get_logger("test-level")
    log.info("quiet")
    log.warning("loud")
    err = capsys.readouterr().err
    assert "quiet" not in err
    assert "loud" in err


def test_redact_leaves_prices_and_ids_alone() -> None:
    text = "BTC 88746.03 vs 88691.36, market btc-updown-15m-1766745900"
    assert redact(text) == text
