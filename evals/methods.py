"""What an eval ran with, and the methods note written from it (never from assumptions).

``config_block`` records the configuration the replay actually used: the trader and model,
the cadence, the fair-value model file and its market-blend weights, the fees charged, the
guard limits and the coverage bound.  ``methods_note`` turns that block into the report's
sentences, and ``verdict`` says in plain words whether the agent forecast worse than the
market.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from core.guard import GuardLimits
from core.settings import Settings
from tools.fair_value import MODEL_PATH, default_model


def config_block(*, trader: str, model: str | None, cadence_s: float, settings: Settings,
                 fees: dict[str, Any], price_age_bound_s: dict[str, float]) -> dict[str, Any]:
    fv = default_model()
    limits = GuardLimits.for_replay(settings)
    return {
        "trader": trader,
        "model": model,
        "cadence_s": cadence_s,
        "fair_value_model": {
            "file": MODEL_PATH.name, "version": fv.version,
            "blend_model_weight": fv.blend_model_weight,
            "blend_market_weight": fv.blend_market_weight,
            "blend_max_spread": fv.blend_max_spread,
            "tail_dof": fv.tail_dof, "basis_sd": fv.basis_sd,
        },
        "fees": fees,
        "limits": {f.name: getattr(limits, f.name) for f in dataclasses.fields(limits)},
        "risk_appetite": settings.risk_level,
        "coverage": {"max_price_age_s": settings.max_price_age_s,
                     "price_age_bound_s": price_age_bound_s},
    }


def methods_note(summary: dict[str, Any]) -> list[str]:
    """The report's methods note, sentence by sentence, from the summary's ``config``."""
    c = summary["config"]
    fv = c["fair_value_model"]
    lim = c["limits"]
    blend = (f"sigmoid({fv['blend_model_weight']:g} logit(model) + "
             f"{fv['blend_market_weight']:g} logit(mid))")
    if c["trader"] == "llm":
        agent = (f"agent = the probability the LLM ({c['model']}) states when it decides "
                 f"(asked only where a side has an edge after fees); elsewhere the "
                 f"deterministic P(up), {blend}")
    else:
        agent = (f"agent = the deterministic trader's P(up): the logit blend {blend} of the "
                 f"fair-value model with the market mid while the Up book's spread is at most "
                 f"{fv['blend_max_spread']:g}, the model alone otherwise")
    bounds = ", ".join(f"{a} {b:g} s" for a, b in c["coverage"]["price_age_bound_s"].items())
    windows_skipped = summary.get("windows_skipped") or {}
    skipped = (", ".join(f"{k} {v}" for k, v in windows_skipped.items())
               if windows_skipped else "none")
    return [
        f"Configuration: trader {c['trader']}"
        + (f" ({c['model']})" if c.get("model") else "")
        + f", a decision every {c['cadence_s']:g} s in each window, risk appetite "
        f"{c['risk_appetite']}, fair-value model {fv['version']} ({fv['file']}).",
        "Brier = mean((p - y)^2); log loss clips p to [0.001, 0.999]; ECE uses 10 equal-width "
        "bins (sum of bin share x |mean p - frequency of Up|).",
        "Every forecaster is scored on the same decision points: windows with a recorded "
        "outcome, where the agent and the fair value have a probability and (with a book) the "
        "market a mid.",
        f"market = mid of the Up token (or 1 - mid of Down); fair_value = the fair-value model "
        f"alone (Student-t moneyness, before any blend); {agent}; coin_flip = 0.5.  The agent "
        "leans on the mid, so it differs from both.",
        f"Fees: {c['fees']['explanation']}  Fee per share = rate x p x (1 - p).",
        f"Guard limits used (paper replay): min confidence {lim['min_confidence']}, min edge "
        f"after fees {lim['min_edge']:g}, max position ${lim['max_position_usd']:g}, at most "
        f"{lim['max_orders_per_day']} orders per day, daily loss limit "
        f"${lim['daily_loss_limit_usd']:g}, {lim['max_consecutive_losses']} losses in a row "
        f"then a {lim['loss_cooldown_s']:g} s cooldown, no entry in the first "
        f"{lim['no_entry_first_s']:g} s or last {lim['no_entry_last_s']:g} s; the price to "
        "beat is derived from the recorded path (unverified), so the verified-reference rule "
        "is relaxed for replays only.",
        "P&L is after taker fees, filled FOK at the recorded best ask and its size, settled "
        "from the recorded outcome.",
        "95% interval: the windows are resampled with replacement (10,000 resamples, fixed "
        "seed) and their P&L summed; percentiles 2.5 and 97.5.  The shaded band on the equity "
        "curve repeats this at every settled window k over the first k windows (windows "
        "without a trade count 0), so its last point is the headline interval.",
        "Max drawdown: largest fall of cumulative settled P&L from its running peak (from 0).  "
        "Max stake: most capital (price paid + fee) committed at one time.",
        "Guard rejections count the decisions `updown run` makes (up to a window's entry); the "
        "eval keeps deciding after an entry only to score forecasts.",
        f"Coverage: a window is replayed only if at every decision time the last price is at "
        f"most MAX_PRICE_AGE_S + the path's interval old ({bounds}) and, with a book, it has "
        f"a book row by its last decision; windows skipped: {skipped}.",
    ]


def verdict(forecast: dict[str, Any]) -> str | None:
    """A plain sentence comparing the agent's Brier with the market mid's (None without one)."""
    agent, market = forecast.get("agent"), forecast.get("market")
    if not agent or not market or agent.get("brier") is None or market.get("brier") is None:
        return None
    a, m, n = agent["brier"], market["brier"], agent["n"]
    if a > m:
        return (f"The agent forecasts worse than the market: its Brier {a:.4f} is higher than "
                f"the market mid's {m:.4f} on the same {n} decision points.")
    if a < m:
        return (f"The agent forecasts better than the market: its Brier {a:.4f} is lower than "
                f"the market mid's {m:.4f} on the same {n} decision points.")
    return f"The agent and the market mid have the same Brier ({a:.4f}) on {n} decision points."
