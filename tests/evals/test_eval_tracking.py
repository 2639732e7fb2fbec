"""evals.tracking: the optional LangSmith experiment, against a recording fake client."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from evals.tracking import log_to_langsmith

SUMMARY: dict[str, Any] = {
    "dataset": "pm15m_synthetic", "windows": 3, "decisions": 42, "trader": "quant",
    "cadence_s": 60.0,
    "forecast": {"agent": {"brier": 0.2, "log_loss": 0.6, "ece": 0.05, "n": 42},
                 "market": None, "fair_value": {"brier": 0.2, "log_loss": 0.6, "ece": 0.05,
                                                "n": 42},
                 "coin_flip": {"brier": 0.25, "log_loss": 0.69, "ece": 0.0, "n": 42}},
    "trading": {"pnl_usd": -1.5, "hit_rate": 0.5, "fees_usd": 0.1, "max_drawdown_usd": 2.0},
    "timing": {"decisions_per_s": 300.0}, "reliability": {"agent": []},
}


class FakeClient:
    def __init__(self, has: bool) -> None:
        self.has = has
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            if name == "has_dataset":
                return self.has
            if name in ("create_dataset", "read_dataset"):
                return SimpleNamespace(id="ds-1")
            if name == "list_examples":
                return iter([SimpleNamespace(id="ex-1")])
            return None
        return record


def test_nothing_happens_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LANGSMITH_API_KEY", raising=False)
    assert log_to_langsmith(SUMMARY) is None


@pytest.mark.parametrize("has_dataset", [True, False])
def test_experiment_is_logged(has_dataset: bool) -> None:
    client = FakeClient(has_dataset)
    project = log_to_langsmith(SUMMARY, client=client,
                               now=datetime(2027, 1, 1, 12, tzinfo=UTC))
    assert project is not None
    assert project.startswith("updown-eval pm15m_synthetic quant cadence 60.0s 2027-01-01")
    names = [c[0] for c in client.calls]
    assert ("create_dataset" in names) is (not has_dataset)
    project_call = next(c for c in client.calls if c[0] == "create_project")
    assert project_call[2]["reference_dataset_id"] == "ds-1"
    run = next(c for c in client.calls if c[0] == "create_run")
    assert run[2]["project_name"] == project
    assert run[2]["reference_example_id"] == "ex-1"
    assert "reliability" not in run[2]["outputs"]
    feedback = {c[1][1]: c[2]["score"] for c in client.calls if c[0] == "create_feedback"}
    assert feedback["agent_brier"] == 0.2
    assert feedback["pnl_usd"] == -1.5
    assert feedback["decisions_per_s"] == 300.0
    assert not any(k.startswith("market_") for k in feedback)  # no book, no market scores


def test_a_failing_service_does_not_fail_the_eval(capsys: pytest.CaptureFixture[str]) -> None:
    class Broken(FakeClient):
        def has_dataset(self, **_: Any) -> bool:
            raise ConnectionError("unreachable")

    assert log_to_langsmith(SUMMARY, client=Broken(True)) is None
    assert "LangSmith logging failed (ConnectionError)" in capsys.readouterr().err
