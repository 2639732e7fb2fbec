"""``updown explain``'s output: every node's re-run output, every guard rule, the verdict."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agent.explain import NODE_KEY, NODES, Explanation, value_at


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _fields(record: Mapping[str, Any], skip: tuple[str, ...] = ()) -> list[str]:
    return [f"    {key}: {_fmt(record[key])}" for key in sorted(record) if key not in skip]


def _headline(node: str, out: Mapping[str, Any]) -> str:
    if node == "technical_analyst":
        return (f"{out['signal']} (score {out['score']:+.3f}, {out['candles_used']} candles): "
                + "; ".join(out.get("reasons") or ["no reasons"]))
    if node == "fair_value":
        if not out:
            return "no fair value"
        return (f"P(up) {_fmt(out['fair_up'])} (model {_fmt(out['model_up'])}, market mid "
                f"{_fmt(out.get('market_up_mid'))}); edge after fees up "
                f"{_fmt(out.get('edge_after_fees_up'))}, down "
                f"{_fmt(out.get('edge_after_fees_down'))}")
    if node == "sentiment_analyst":
        return (f"{out['label']} {out['score']:+.1f} (confidence {out['confidence']:.2f}, "
                f"{len(out.get('sources') or [])} sources)")
    if node == "risk_manager":
        return (f"{out['risk_level']}, stake {out['stake_usd']:.2f} USDC, by "
                f"{out['decided_by']}")
    if node == "trader":
        analysis = out["analysis"]
        return (f"{analysis['decision']} (confidence {analysis['confidence']}, by "
                f"{out['decided_by']})")
    if out.get("side") is None and not out.get("rules_fired"):
        return "nothing to judge (hold)"
    verdict = "approved" if out["approved"] else "rejected"
    return (f"{verdict}: {out.get('side')} {out.get('stake_usd', 0.0):.2f} USDC, worst price "
            f"{_fmt(out.get('worst_price'))}")


def render_text(exp: Explanation) -> str:
    """Every node's re-run output, every guard rule, and the verdict on reproduction."""
    lines = [f"decision {exp.decision_id}"]
    lines += [f"  {note}" for note in exp.notes]
    snap = exp.rerun["snapshot"]
    lines.append(f"snapshot: {snap['market_id']} as of {snap['as_of']:.0f}, price "
                 f"{_fmt(snap['price'])} vs price to beat {_fmt(snap['price_to_beat'])}, "
                 f"{snap['candles']['count']} candles, up {_fmt(snap['up'])}, "
                 f"down {_fmt(snap['down'])}")
    for node in NODES:
        out = exp.rerun.get(NODE_KEY[node]) or {}
        lines.append(f"{node}: {_headline(node, out)}")
        if node == "guard":
            for hit in out.get("rules_fired") or []:
                lines.append(f"    {hit['action']} {hit['rule']}: {hit['detail']}")
            if not out.get("rules_fired"):
                lines.append("    no rule fired")
            lines += _fields(out, skip=("rules_fired",))
        else:
            lines += _fields(out)
    execution = exp.logged.get("execution")
    logged_exec = ("nothing" if not execution else
                   f"{execution['status']} {execution['side']} {execution['stake_usd']:.2f} USDC")
    lines.append(f"execute: not re-run (explain never places an order); logged: {logged_exec}")
    if exp.matches:
        lines.append("matches the log: yes")
    else:
        for path in exp.differences:
            lines.append(f"  differs {path}: logged {_fmt(value_at(exp.logged, path))}, "
                         f"re-run {_fmt(value_at(exp.rerun, path))}")
        lines.append(f"matches the log: no: {', '.join(exp.differences)}")
    return "\n".join(lines)


def render_json(exp: Explanation) -> dict[str, Any]:
    return {
        "decision_id": exp.decision_id, "matches": exp.matches,
        "differences": [{"key": p, "logged": value_at(exp.logged, p),
                         "rerun": value_at(exp.rerun, p)} for p in exp.differences],
        "notes": exp.notes,
        "snapshot_sha256": exp.rerun.get("snapshot_sha256"),
        "nodes": {node: exp.rerun.get(NODE_KEY[node]) for node in NODES},
        "logged_execution": exp.logged.get("execution"),
    }
