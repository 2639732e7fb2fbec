"""A stand-in for the official SDK's ``SecureClient`` redemption calls, speaking the fake
venue's relayer and Data API routes (``fakeclob.TradeFinalityAndRedemption``) over its
in-process transport, so ``tools.polymarket.redeem.SdkRedeemer`` runs unchanged on top.

Why not the SDK client itself: ``SecureClient.create`` also validates API keys, checks the
wallet's deployment at the relayer and resolves markets through Gamma's keyset route, and an
EOA wallet redeems over a chain RPC; the adapter's three calls are what this stands in for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from fakeclob import FakeClob


@dataclass(frozen=True)
class Handle:
    transaction_id: str
    transaction_hash: str | None


class SdkRejected(Exception):
    """Stands in for ``polymarket.errors.RequestRejectedError`` (an HTTP 4xx answer)."""


class FakeSdkClient:
    """``redeem_positions`` / ``list_positions`` / the relayer's transaction record."""

    def __init__(self, fake: FakeClob) -> None:
        self._http = httpx.Client(base_url="http://venue.invalid", transport=fake.transport())

    def redeem_positions(self, *, condition_id: str) -> Handle:
        r = self._http.post("/relayer/submit", content=json.dumps({"condition_id": condition_id}))
        if 400 <= r.status_code < 500:
            raise SdkRejected(r.text)
        r.raise_for_status()
        doc = r.json()
        return Handle(doc["transactionID"], doc.get("transactionHash"))

    def list_positions(self, *, condition_id: str) -> list[dict[str, Any]]:
        r = self._http.get("/data-api/positions", params={"market": condition_id})
        r.raise_for_status()
        return list(r.json())

    def transaction(self, tx_id: str) -> dict[str, Any]:
        r = self._http.get(f"/relayer/v1/account/transactions/{tx_id}")
        r.raise_for_status()
        return dict(r.json())

    def close(self) -> None:
        self._http.close()
