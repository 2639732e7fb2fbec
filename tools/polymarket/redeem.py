"""Live redemption through the official SDK (``polymarket-client``, import ``polymarket``).

``SdkRedeemer`` is the one adapter between ``tools.redemption.Redeemer`` and the SDK:

* ``submit``: ``SecureClient.redeem_positions(condition_id=...)`` (the SDK builds the CTF
  ``redeemPositions`` call, or the V2 router's ``redeem`` for protocol-V2 positions, and
  sends it through the relayer for proxy / safe / deposit wallets; an EOA wallet broadcasts
  it itself over the chain RPC).  The handle is NOT waited on: the transaction id is
  journaled and ``status`` asks about it on a later sweep, so no sweep blocks for minutes;
* ``status``: the relayer's record of that transaction (``STATE_CONFIRMED`` confirmed,
  ``STATE_FAILED`` / ``STATE_INVALID`` failed, anything else pending);
* ``holds_winnings``: the Data API's positions of the wallet in that condition: a winning
  balance still ``redeemable`` means not redeemed yet (asked before every re-submission).

The window's condition id comes from Gamma (``condition_of``, the broker's market lookup).
The SDK's refusals for input (``UserInputError``: "no balance to redeem") and
``RequestRejectedError`` become ``RedemptionRejected`` (nothing went out); any other error
leaves the outcome unknown, which ``tools.redemption`` resolves by asking the venue later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, Protocol

from core.logs import get_logger
from tools.redemption import RedemptionRejected, Submission, TxStatus

log = get_logger("updown.redeem")

CONFIRMED_STATES = frozenset({"STATE_CONFIRMED", "CONFIRMED"})
FAILED_STATES = frozenset({"STATE_FAILED", "STATE_INVALID", "FAILED", "INVALID"})


class SdkClient(Protocol):
    """The part of ``polymarket.SecureClient`` the adapter uses."""

    def redeem_positions(self, *, condition_id: str) -> Any: ...

    def list_positions(self, *, condition_id: str) -> Iterable[Any]: ...


def _rejections() -> tuple[type[BaseException], ...]:
    try:
        from polymarket.errors import RequestRejectedError, UserInputError
    except ImportError:  # pragma: no cover - the SDK is a dependency
        return ()
    return (UserInputError, RequestRejectedError)


def _field(obj: Any, *names: str) -> Any:
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if hasattr(obj, name):
            return getattr(obj, name)
    return None


def relayer_state(obj: Any) -> TxStatus:
    """A relayer transaction record (SDK ``GaslessTransaction`` or its JSON) as a status."""
    state = _field(obj, "state")
    text = str(getattr(state, "value", state) or "").upper()
    if text in CONFIRMED_STATES:
        return "confirmed"
    if text in FAILED_STATES:
        return "failed"
    return "pending"


class SdkRedeemer:
    """``tools.redemption.Redeemer`` over the official SDK client."""

    name = "polymarket-sdk"

    def __init__(self, client: SdkClient, *, condition_of: Callable[[str], str],
                 transaction_of: Callable[[str], Any],
                 rejections: tuple[type[BaseException], ...] = ()) -> None:
        """``transaction_of(tx_id)``: the relayer's record of a transaction (the SDK's
        ``fetch_gasless_transaction_sync`` on the client's relayer transport);
        ``rejections``: further error classes meaning "nothing was submitted"."""
        self._client = client
        self._rejections = _rejections() + rejections
        self._condition_of = condition_of
        self._transaction_of = transaction_of

    def holds_winnings(self, market_id: str) -> bool | None:
        condition = self._condition_of(market_id)
        for position in self._client.list_positions(condition_id=condition):
            size = Decimal(str(_field(position, "size") or 0))
            if bool(_field(position, "redeemable")) and size > 0:
                return True
        return False

    def submit(self, market_id: str) -> Submission:
        condition = self._condition_of(market_id)
        try:
            handle = self._client.redeem_positions(condition_id=condition)
        except self._rejections as err:
            raise RedemptionRejected(f"{type(err).__name__}: {err}"[:300]) from None
        tx_id = _field(handle, "transaction_id")
        tx_hash = _field(handle, "transaction_hash")
        log.info("redemption_submitted", market_id=market_id, condition_id=condition[:18],
                 tx_id=tx_id)
        return Submission(tx_id=None if tx_id is None else str(tx_id),
                          tx_hash=None if tx_hash is None else str(tx_hash))

    def status(self, tx_id: str) -> TxStatus:
        return relayer_state(self._transaction_of(tx_id))


def sdk_redeemer(client: Any, *, condition_of: Callable[[str], str]) -> SdkRedeemer:
    """The adapter around a created ``polymarket.SecureClient`` (gasless wallets)."""
    from polymarket._internal.actions.relayer.poll import fetch_gasless_transaction_sync

    def transaction_of(tx_id: str) -> Any:
        return fetch_gasless_transaction_sync(client._ctx.relayer, transaction_id=tx_id)

    return SdkRedeemer(client, condition_of=condition_of, transaction_of=transaction_of)
