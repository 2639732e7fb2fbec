"""The dashboard's HTML pages, rendered on the server from the same dicts the JSON API answers.

Plain string building with ``html.escape`` on every value that came from the journal (a
market id, a rule's detail, the model's reasoning are data, not markup).  The pages work
without script; ``/static/dashboard.js`` only refreshes ``<main>`` when the server-sent
events say the journal (or the live status) changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

from agent.web.svg import equity_chart, reliability_chart

NAV = (("/", "Overview"), ("/equity", "Equity"), ("/decisions", "Decisions"),
       ("/trades", "Trades"), ("/calibration", "Calibration"))


def e(value: Any) -> str:
    return escape("" if value is None else str(value))


def ts(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def usd(value: float | None, sign: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{value:+,.2f}" if sign else f"{value:,.2f}"


def num(value: float | None, fmt: str = "{:.3f}") -> str:
    return "-" if value is None else fmt.format(value)


def layout(title: str, path: str, body: str, *, controls: str = "", live: bool = True) -> str:
    nav = "".join(f'<a href="{href}"{" class=active" if href == path else ""}>{e(name)}</a>'
                  for href, name in NAV)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{e(title)} · updown</title>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        '<link rel=stylesheet href="/static/dashboard.css"></head>'
        f'<body data-live="{"1" if live else "0"}"><header><b>updown</b><nav>{nav}</nav>'
        '<span id=live-state class=muted></span></header>'
        f"{controls}<main>{body}</main>"
        '<script src="/static/dashboard.js"></script></body></html>')


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, css: str = "") -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def card(label: str, value: str, note: str = "", *, ident: str = "") -> str:
    attr = f' id="{ident}"' if ident else ""
    return (f'<div class=card{attr}><div class=label>{e(label)}</div>'
            f'<div class=value>{value}</div><div class=note>{note}</div></div>')


def _pnl_class(value: float | None) -> str:
    return "" if value is None else ("pos" if value >= 0 else "neg")


# --- overview -----------------------------------------------------------------------------------


def kill_controls(engaged: bool) -> str:
    action, label = ("off", "Release kill switch") if engaged else ("on", "Engage kill switch")
    return ('<section id=controls><form method=post action="/kill">'
            '<label>kill switch token <input type=password name=token autocomplete=off '
            'required></label>'
            f'<input type=hidden name=state value="{action}">'
            f'<button type=submit class="{"release" if engaged else "danger"}">{label}</button>'
            '</form></section>')


def overview(doc: dict[str, Any]) -> str:
    today = doc.get("today")
    totals = doc["totals"]
    kill = doc["kill_switch"]
    cards = [
        card("mode", f'<span id=mode>{e(doc.get("mode") or "-")}</span>',
             f'account {e(doc.get("account"))} · {e(doc["source"])} · as of {ts(doc["as_of"])}'),
        card("kill switch", f'<span id=kill-state class="{"neg" if kill["engaged"] else "pos"}">'
             f'{"ON: no new order" if kill["engaged"] else "off"}</span>',
             f'STOP file {e(kill["stop_file"])}'),
        card("realised P&L after fees",
             f'<span id=total-pnl class={_pnl_class(totals["pnl_usd"])}>'
             f'{usd(totals["pnl_usd"])}</span> USDC',
             f'{totals["trades"]} trades · {totals["wins"]} won / {totals["losses"]} lost · '
             f'fees {usd(totals["fees_usd"], sign=False)}'),
    ]
    if today is not None:
        used = today["loss_limit_used"]
        cards.append(card(
            "today's P&L vs daily loss limit",
            f'<span id=today-pnl class={_pnl_class(today["pnl_usd"])}>{usd(today["pnl_usd"])}'
            f'</span> / -{usd(today["daily_loss_limit_usd"], sign=False)}',
            f'{ts(today["day_start"])[:10]} UTC · '
            f'{"limit used " + format(used, ".0%") if used is not None else "no limit"}'))
        cards.append(card("orders today vs cap",
                          f'<span id=orders-today>{today["orders"]}</span> / '
                          f'{today["max_orders_per_day"]}',
                          f'{totals["unknown_outcome"]} with unknown outcome'))
    prov = doc["provisional"]
    cards.append(card("open positions", f'<span id=open-positions>'
                      f'{len(doc["open_positions"])}</span>',
                      f'provisional {prov["count"]} ({usd(prov["notional_usd"], sign=False)} '
                      f'USDC){" · " + e(prov["note"]) if prov["note"] else ""}'))
    unredeemed = doc["unredeemed"]
    cards.append(card("unredeemed winnings", usd(unredeemed["usd"], sign=False),
                      e(unredeemed["note"])))
    cards.append(card("decisions", f'<span id=decision-count>{totals["decisions"]}</span>',
                      f'{totals["orders"]} orders · staked '
                      f'{usd(totals["staked_usd"], sign=False)} USDC'))
    markets = []
    for m in doc["markets"]:
        if m.get("feeds") is None:
            markets.append(f'<p class=muted>{e(m.get("name"))}: {e(m.get("note"))}</p>')
            continue
        feeds = table(("feed", "last message", "reconnects", "dropped", "last error"),
                      ((e(f["feed"]), _age(f["last_message_age_s"]), e(f["reconnects"]),
                        e(f["dropped"]), e(f["last_error"] or "")) for f in m["feeds"]),
                      css="feeds")
        last = m.get("last_decision") or {}
        markets.append(
            f'<div class=market><h3>{e(m["name"])} <small>{e(m.get("market_id"))}</small></h3>'
            f'<p>price {num(m.get("price"), "{:,.2f}")} · to beat '
            f'{num(m.get("price_to_beat"), "{:,.2f}")}'
            f'{"" if m.get("price_to_beat_verified") else " (unverified)"} · closes in '
            f'{num(m.get("time_to_close_s"), "{:.0f}")} s · entered '
            f'{"yes" if m.get("entered") else "no"} · last decision '
            f'{e(last.get("decision", "-"))} {e(last.get("confidence", ""))}</p>{feeds}</div>')
    positions = table(
        ("entry", "window", "side", "shares", "notional", "fee", "venue status"),
        ((ts(p["entry_ts"]), e(p["market_id"]), e(p["side"]), f'{p["shares"]:.2f}',
          usd(p["notional_usd"], sign=False), usd(p["fee_usd"], sign=False),
          e(p["venue_status"] or "-") + (" (provisional)" if p["provisional"] else ""))
         for p in doc["open_positions"]), css="positions")
    return (f'<h1>Overview</h1><div class=cards>{"".join(cards)}</div>'
            f'<h2>Markets and feeds</h2>{"".join(markets)}'
            f'<h2>Open positions</h2>{positions}')


def _age(age: float | None) -> str:
    if age is None:
        return "-"
    css = "neg" if age > 10 else ""
    return f'<span class="{css}">{age:.1f} s ago</span>'


# --- equity -------------------------------------------------------------------------------------


def equity(doc: dict[str, Any]) -> str:
    points = doc["points"]
    chart = equity_chart([(p["ts"], p["equity_usd"]) for p in points],
                         title="realised P&L after fees (USDC)")
    rows = ((ts(p["ts"]), e(p["market_id"]),
             f'<span class={_pnl_class(p["pnl_usd"])}>{usd(p["pnl_usd"])}</span>',
             usd(p["equity_usd"])) for p in reversed(points))
    return (f'<h1>Equity after fees</h1><p>P&amp;L <b id=equity-pnl '
            f'class={_pnl_class(doc["pnl_usd"])}>{usd(doc["pnl_usd"])}</b> USDC over '
            f'{doc["settled"]} settled positions (fees {usd(doc["fees_usd"], sign=False)} '
            f'USDC, already deducted)</p>{chart}'
            + table(("settled", "window", "P&L", "equity"), rows))


# --- decisions ----------------------------------------------------------------------------------


def decision_link(decision_id: str) -> str:
    return "/decisions/" + quote(decision_id, safe="")


def decisions(doc: dict[str, Any], *, limit: int) -> str:
    rows = []
    for d in doc["decisions"]:
        fired = ", ".join(f'{r["rule"]}' + ("" if r["action"] == "reject" else f' ({r["action"]})')
                          for r in d["rules_fired"])
        rows.append((
            f'<a href="{decision_link(d["decision_id"])}">{ts(d["as_of"])}</a>',
            e(d["market_id"]),
            f'{num(d["fair_up"])} / {num(d["market_mid"])}',
            f'<span class="verdict {e(d["verdict"])}">{e(d["decision"])} → {e(d["verdict"])}'
            '</span>',
            e(d["confidence"] if d["confidence"] is not None else "-"),
            e(fired or "-"),
            f'<span class=reasoning>{e(d["reasoning"] or "")}</span>',
            f'${d["llm_usd"]:.4f}' if d["llm_calls"] else "-"))
    more = (f'<p><a id=older href="/decisions?limit={limit}&amp;before='
            f'{quote(doc["next"], safe="")}">older decisions →</a></p>' if doc["next"] else "")
    return ("<h1>Decisions</h1><p class=muted>newest first; fair P(up) of the agent against "
            "the book's Up mid; a row opens every node's output</p>"
            + table(("time (UTC)", "market", "fair up / mid", "decision → verdict",
                     "confidence", "guard rules fired", "reasoning", "LLM cost"), rows,
                    css="decisions") + more)


def decision_detail(doc: dict[str, Any]) -> str:
    record = doc["record"]
    order = ("snapshot", "technical", "fair_value", "sentiment", "risk", "trader", "verdict",
             "execution")
    sections = []
    for name in (*[k for k in order if k in record],
                 *[k for k in record if k not in order and isinstance(record[k], dict)]):
        value = record[name]
        if not isinstance(value, dict):
            continue
        rows = ((e(k), _cell(v)) for k, v in value.items())
        sections.append(f'<section class=node id="node-{e(name)}"><h2>{e(name)}</h2>'
                        + table(("field", "value"), rows, css="kv") + "</section>")
    return (f'<h1>Decision</h1><p><b>{e(doc["decision_id"])}</b><br>market '
            f'{e(doc["market_id"])} · as of {ts(doc["as_of"])} UTC · decided by '
            f'{e(doc["decided_by"])} · {"approved" if doc["approved"] else "not approved"} · '
            f'run {e(doc["run_id"])}</p>' + "".join(sections))


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return f"<pre>{e(json.dumps(value, indent=1, default=str))}</pre>"
    if isinstance(value, float):
        return e(f"{value:.6g}")
    return e(value)


# --- trades -------------------------------------------------------------------------------------


def trades(doc: dict[str, Any]) -> str:
    rows = ((ts(t["entry_ts"]), e(t["market_id"]), e(t["side"]),
             e(t["status"]) + (" (outcome unknown)" if t["outcome_unknown"] else ""),
             num(t["price"]), f'{t["shares"]:.2f}', usd(t["notional_usd"], sign=False),
             usd(t["fee_usd"], sign=False), e(t["outcome"] or "open"),
             f'<span class={_pnl_class(t["pnl_usd"])}>{usd(t["pnl_usd"])}</span>')
            for t in doc["trades"])
    more = (f'<p><a href="/trades?offset={doc["next_offset"]}&amp;limit={doc["limit"]}">'
            "older trades →</a></p>" if doc["next_offset"] is not None else "")
    return ("<h1>Trades</h1>"
            + table(("entry (UTC)", "window", "side", "status", "price", "shares", "notional",
                     "fee", "outcome", "P&L"), rows, css="trades") + more)


# --- calibration --------------------------------------------------------------------------------


def calibration(doc: dict[str, Any]) -> str:
    def pts(bins: list[dict[str, Any]]) -> list[tuple[float, float, int]]:
        return [(b["mean_predicted"], b["observed_up"], b["count"]) for b in bins if b["count"]]

    chart = reliability_chart([("agent", "agent P(up)", pts(doc["agent"])),
                               ("market", "market Up mid", pts(doc["market"]))])
    rows = ((f'{a["lower"]:.1f}-{a["upper"]:.1f}', e(a["count"]), num(a["mean_predicted"]),
             num(a["observed_up"]), e(m["count"]), num(m["mean_predicted"]),
             num(m["observed_up"])) for a, m in zip(doc["agent"], doc["market"], strict=True))
    return (f'<h1>Calibration</h1><p>{doc["decisions"]} decisions in {doc["windows"]} settled '
            f'windows · Brier agent <b id=brier-agent>{num(doc["agent_brier"], "{:.4f}")}</b>'
            f' · market <b id=brier-market>{num(doc["market_brier"], "{:.4f}")}</b> '
            f'({doc["market_decisions"]} with a mid)</p><p class=muted>{e(doc["note"])}</p>'
            f'{chart}'
            + table(("bin", "agent n", "agent mean P(up)", "agent observed Up", "market n",
                     "market mean mid", "market observed Up"), rows, css="calibration"))


def error_page(status: int, message: str) -> str:
    return layout(f"error {status}", "", f"<h1>{status}</h1><p>{e(message)}</p>", live=False)
