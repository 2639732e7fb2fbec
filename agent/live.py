"""The explicit opt-in to live trading, and a live session started in the one safe order.

Live trading happens only when ALL of these hold (``resolve_mode``):

* ``POLYMARKET_MODE=live`` in the settings,
* the ``--live`` flag on the command,
* a confirmation: the phrase ``CONFIRM_PHRASE`` typed at the prompt, or the same phrase in
  ``LIVE_CONFIRM`` (for unattended runs),
* ``POLYMARKET_PRIVATE_KEY`` set.

Anything less is paper trading (no flag) or a one-line refusal (flag without the rest); the
guard refuses live entries without the confirmation as a second line of defence.

``LiveSession.start()`` then: builds the broker (the key goes straight into it), connects
(API credentials derived once if not configured, venue clock, version, balance and allowance),
and reconciles the journal with the venue (orders, then trades: provisional fills re-checked,
ghost fills adopted).  Only a clean reconciliation makes the session ``ready``; ``context()``
refuses before that, so no decision can run first.  ``reread()`` does the same after a
reconnect; ``settle_due()`` and ``redeem_due()`` settle resolved windows (fills final on
chain only) and redeem their winning positions exactly once.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Literal

from agent.tracing import install_redacting_tracing
from core.clock import Clock, SystemClock
from core.errors import UserError
from core.guard import GuardLimits
from core.logs import get_logger
from core.settings import Settings
from graphs.context import Context
from tools.journal import Journal, SettledPosition
from tools.polymarket.broker import LiveClobBroker, StartupCheck
from tools.polymarket.orders import LiveSetupError
from tools.polymarket.reconcile import ReconcileReport, recheck_provisional, reconcile
from tools.polymarket.settlement import settle_resolved
from tools.redemption import Redeemer, RedeemReport, redeem_due

log = get_logger("updown.live")

CONFIRM_PHRASE = "trade real money"


class LiveOptInError(UserError):
    """Live trading was asked for without everything it needs; one line for the user."""


@dataclass(frozen=True, slots=True)
class TradingMode:
    mode: Literal["paper", "live"]
    confirmed: bool
    note: str = ""

    def limits(self, settings: Settings) -> GuardLimits:
        """The guard's limits for this mode (the mode comes from here, not the settings)."""
        return GuardLimits.from_settings(settings, live_confirmed=self.confirmed,
                                         mode=self.mode)


def confirmation_ok(text: str | None) -> bool:
    return text is not None and " ".join(text.split()).lower() == CONFIRM_PHRASE


def resolve_mode(settings: Settings, *, live_flag: bool, typed_confirmation: str | None = None
                 ) -> TradingMode:
    """Paper unless every live condition holds; a partial request is a LiveOptInError."""
    if not live_flag:
        note = ("POLYMARKET_MODE=live but --live was not given: paper trading"
                if settings.polymarket_mode == "live" else "")
        return TradingMode("paper", False, note)
    if settings.polymarket_mode != "live":
        raise LiveOptInError("--live needs POLYMARKET_MODE=live in the settings")
    given = typed_confirmation if typed_confirmation is not None else settings.live_confirm
    if not confirmation_ok(given):
        raise LiveOptInError(f"live trading needs the confirmation: type {CONFIRM_PHRASE!r} "
                             f"when asked, or set LIVE_CONFIRM={CONFIRM_PHRASE!r}")
    key = settings.polymarket_private_key
    if key is None or not key.get_secret_value().strip():
        raise LiveOptInError("live trading needs POLYMARKET_PRIVATE_KEY")
    return TradingMode("live", True)


def mode_for_command(settings: Settings, *, live_flag: bool, action: str) -> TradingMode:
    """``resolve_mode`` for a command: on a terminal, without ``LIVE_CONFIRM``, ``--live`` asks
    for the confirmation phrase to be typed ("Type '...' to <action>")."""
    typed = None
    if live_flag and not settings.live_confirm and sys.stdin.isatty():
        import typer

        typed = typer.prompt(f"Type '{CONFIRM_PHRASE}' to {action}")
    return resolve_mode(settings, live_flag=live_flag, typed_confirmation=typed)


def live_account(funder: str) -> str:
    """The journal account of a wallet: one ledger per funded address, never mixed with paper."""
    return f"live:{funder.lower()}"


class LiveSession:
    """A connected, reconciled live broker and the context the graph needs to use it."""

    def __init__(self, settings: Settings, journal: Journal, mode: TradingMode, *,
                 clock: Clock | None = None, **broker_kw: Any) -> None:
        if mode.mode != "live" or not mode.confirmed:
            raise LiveOptInError("a live session needs a confirmed live mode")
        self.settings = settings
        self.journal = journal
        self.mode = mode
        self.clock = clock or SystemClock()
        self._broker_kw = broker_kw
        self.broker: LiveClobBroker | None = None
        self.startup: StartupCheck | None = None
        self.reconciliation: ReconcileReport | None = None
        # Who pays winnings out (the SDK adapter, built on first use; tests inject one).
        self.redeemer: Redeemer | None = broker_kw.pop("redeemer", None)

    @property
    def ready(self) -> bool:
        return (self.broker is not None and self.reconciliation is not None
                and self.reconciliation.ok)

    @property
    def account(self) -> str:
        if self.broker is None:
            raise LiveSetupError("live session not started")
        return live_account(self.broker.funder)

    def start(self) -> ReconcileReport:
        """Connect, then reconcile; raises LiveSetupError unless everything is clean."""
        install_redacting_tracing(settings=self.settings)  # no-op unless tracing is on
        broker = LiveClobBroker.from_settings(self.settings, store=self.journal,
                                              clock=self.clock, **self._broker_kw)
        self.startup = broker.connect()
        self.broker = broker
        report = reconcile(self.journal, broker, account=self.account, clock=self.clock)
        self.reconciliation = report
        if not report.ok:
            raise LiveSetupError(
                f"reconciliation found {len(report.unresolved)} unresolved order(s) and "
                f"{len(report.discrepancies)} discrepancy(ies): not trading until resolved "
                f"(see `updown portfolio`)")
        log.info("live_session_ready", account=self.account, resolved=len(report.resolved))
        return report

    def limits(self) -> GuardLimits:
        return self.mode.limits(self.settings)

    def context(self, *, run_id: str, **kw: Any) -> Context:
        """The graph context for live decisions; only after a clean start."""
        if not self.ready or self.broker is None:
            raise LiveSetupError("reconcile before any decision: call start() first")
        return Context(account=self.account, limits=self.limits(),
                       risk_appetite=self.settings.risk_level, journal=self.journal,
                       run_id=run_id, broker=self.broker, clock=self.clock,
                       stop_file=str(self.settings.stop_file), **kw)

    def reread(self) -> ReconcileReport:
        """Orders and trades read again (after a reconnect: the user stream does not replay
        what was missed); the session is ready again only if the result is clean."""
        if self.broker is None:
            raise LiveSetupError("live session not started")
        report = reconcile(self.journal, self.broker, account=self.account, clock=self.clock)
        self.reconciliation = report
        log.info("live_session_reread", account=self.account, ok=report.ok,
                 failed_fills=len(report.failed_fills), adopted=len(report.adopted_fills))
        return report

    def settle_due(self) -> list[SettledPosition]:
        """Re-check provisional fills, then settle every window of this account the venue
        has resolved (only fills final on chain are settled)."""
        if self.broker is None:
            raise LiveSetupError("live session not started")
        from core.fees import dated_fee_schedule

        broker = self.broker
        now = self.clock.now()
        recheck_provisional(self.journal, broker, account=self.account, now=now)
        return settle_resolved(
            self.journal,
            lambda market_id: broker.market(market_id, fallback_fees=dated_fee_schedule(now)),
            account=self.account, now=now)

    def redeem_due(self) -> RedeemReport:
        """Redeem every winning position of this account not redeemed yet (exactly once)."""
        if self.broker is None:
            raise LiveSetupError("live session not started")
        if self.redeemer is None:
            self.redeemer = self._sdk_redeemer()
        return redeem_due(self.journal, self.redeemer, account=self.account,
                          now=self.clock.now())

    def _sdk_redeemer(self) -> Redeemer:
        """The official SDK's client for the wallet (redemption goes through its relayer)."""
        from polymarket import SecureClient

        from core.fees import dated_fee_schedule
        from tools.polymarket.redeem import sdk_redeemer

        key = self.settings.polymarket_private_key
        if key is None or self.broker is None:
            raise LiveSetupError("live redemption needs POLYMARKET_PRIVATE_KEY")
        broker = self.broker
        client = SecureClient.create(private_key=key.get_secret_value().strip(),
                                     wallet=broker.funder)

        def condition_of(market_id: str) -> str:
            return broker.market(market_id, fallback_fees=dated_fee_schedule(
                self.clock.now())).condition_id

        return sdk_redeemer(client, condition_of=condition_of)

    def close(self) -> None:
        if self.broker is not None:
            self.broker.close()
