"""``updown eval --compare``: traders side by side on the same windows.  The llm trader talks
to a loopback OpenAI server (``fakeopenai``, a rule-following analyst); without
OPENAI_API_KEY a list including llm is a one-line error, exit 2.  Data: a slice of the real
embedded recording."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from evalkit import embedded_slice
from fakeopenai import serve

UPDOWN = str(Path(sys.executable).with_name("updown"))
DUMMY_KEY = "sk-loopback-dummy-key-000000000000"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "LANGSMITH_", "LANGCHAIN_"))}
    env.update(JOURNAL_PATH=str(tmp_path / "updown.db"),
               AI_DECISION_LOG_PATH=str(tmp_path / "decisions.jsonl"), **extra)
    return env


def test_compare_with_llm_needs_a_key_one_line_exit_2(tmp_path: Path) -> None:
    d = embedded_slice(tmp_path, 2)
    out = tmp_path / "cmp.json"
    proc = subprocess.run([UPDOWN, "eval", "--dataset", str(d), "--compare", "quant,llm",
                           "--json", str(out), "--no-progress"], cwd=tmp_path,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --compare llm needs OPENAI_API_KEY (or leave llm out)"]
    assert not out.exists()


def test_compare_rejects_unknown_and_repeated_traders(tmp_path: Path) -> None:
    d = embedded_slice(tmp_path, 2)
    for arg, needle in (("quant,gpt", "unknown trader 'gpt'"), ("quant,quant", "listed twice"),
                        ("quant", "at least two")):
        proc = subprocess.run([UPDOWN, "eval", "--dataset", str(d), "--compare", arg,
                               "--no-progress"], cwd=tmp_path, env=_env(tmp_path),
                              capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 2, arg
        assert len(proc.stderr.strip().splitlines()) == 1
        assert needle in proc.stderr


@pytest.mark.server
@pytest.mark.timeout(900)
def test_compare_quant_and_llm_on_the_same_windows(tmp_path: Path) -> None:
    d = embedded_slice(tmp_path, 3)
    out, report = tmp_path / "cmp.json", tmp_path / "cmp.html"
    with serve() as srv:
        srv.scenario = "rule"
        proc = subprocess.run(
            [UPDOWN, "eval", "--dataset", str(d), "--compare", "quant,llm", "--cadence", "60",
             "--json", str(out), "--report", str(report), "--no-progress"], cwd=tmp_path,
            env=_env(tmp_path, OPENAI_BASE_URL=srv.base_url, OPENAI_API_KEY=DUMMY_KEY),
            capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["traders"] == ["quant", "llm"]
    quant, llm = data["results"]["quant"], data["results"]["llm"]
    assert (quant["trader"], llm["trader"]) == ("quant", "llm")
    # Same windows and decision points; only the trader differs.
    assert data["windows"] == quant["windows"] == llm["windows"] == 3
    assert quant["decisions"] == llm["decisions"] == 3 * 14
    assert quant["forecast"]["market"] == llm["forecast"]["market"]
    assert quant["forecast"]["fair_value"] == llm["forecast"]["fair_value"]
    assert quant["cost"]["llm_calls"] == 0 < llm["cost"]["llm_calls"]
    rows = {r["trader"]: r for r in data["comparison"]}
    assert rows["llm"]["llm_calls"] == llm["cost"]["llm_calls"]
    assert rows["quant"]["agent_brier"] == quant["forecast"]["agent"]["brier"]
    assert rows["llm"]["pnl_usd"] == llm["trading"]["pnl_usd"]
    assert "traders compared on the same 3 windows" in proc.stdout
    html = report.read_text(encoding="utf-8")
    assert '<table id="comparison">' in html
