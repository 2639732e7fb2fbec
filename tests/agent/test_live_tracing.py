"""Trace redaction: what LangSmith would be handed has every key-shaped string masked, and
nothing is installed (or sent) while tracing is off."""

from __future__ import annotations

from eth_account import Account

from agent.tracing import install_redacting_tracing, mask_secrets, tracing_enabled
from core.logs import MASK
from core.records import ExecutionReport


def test_traced_inputs_and_outputs_are_masked() -> None:
    key = Account.create().key.hex()
    report = ExecutionReport(status="error", broker="b", order_id="o", market_id="m",
                             side="up", stake_usd=1.0, worst_price=0.5,
                             reason=f"failed with {key}")
    masked = mask_secrets({"state": {"execution": report, "notes": (key, "fine", 3, None)},
                           "auth": "Bearer abcdefghijklmnopqrstuvwxyz"})
    text = repr(masked)
    assert key.removeprefix("0x") not in text
    assert masked["state"]["notes"][1:] == ["fine", 3, None]
    assert MASK in masked["state"]["execution"]["reason"]
    assert masked["auth"] == MASK


def test_nothing_is_installed_while_tracing_is_off() -> None:
    assert not tracing_enabled({})
    assert not tracing_enabled({"LANGSMITH_TRACING": "true"})  # no key: nothing can be sent
    assert tracing_enabled({"LANGSMITH_TRACING": "true", "LANGSMITH_API_KEY": "k"})
    assert install_redacting_tracing({}) is False
