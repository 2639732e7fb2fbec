"""Rebuild ``texts.csv.gz`` from the shared raw files (see PROVENANCE.md).

Run from the project root:  ``.venv/bin/python data/news_social/make_sample.py [RAW_DIR]``.
Only selects rows and columns, truncates ``text`` and moves news stamps to the end of their
minute; never edits wording.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

RAW_DIR = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/news_social")
OUT = Path(__file__).with_name("texts.csv.gz")
SPAN_START = pd.Timestamp("2022-06-15 00:00:00", tz="UTC")
SPAN_END = pd.Timestamp("2022-07-05 00:00:00", tz="UTC")  # exclusive
TEXT_CHARS = 500
EPOCH = pd.Timestamp(0, tz="UTC")


def _news() -> pd.DataFrame:
    raw = pd.read_csv(RAW_DIR / "cryptonews_headlines.csv.gz", dtype=str, keep_default_na=False)
    # ``date`` is day-first "d-m-Y H:M"; checked against Binance prices to be UTC.
    stamp = pd.to_datetime(raw["date"], format="%d-%m-%Y %H:%M", utc=True)
    keep = (stamp >= SPAN_START) & (stamp < SPAN_END)
    raw, stamp = raw[keep], stamp[keep]
    # Stamps have minute resolution: an item stamped 07:16 is only certainly public at 07:17.
    ts = (stamp - EPOCH) // pd.Timedelta(seconds=1) + 60
    return pd.DataFrame({
        "ts": ts,
        "source": "news:" + raw["source"],
        "title": raw["title"],
        "text": raw["text"].str.slice(0, TEXT_CHARS),
        "url": raw["url"],
    })


def _reddit() -> pd.DataFrame:
    raw = pd.read_csv(RAW_DIR / "reddit_r_bitcoin_titles_2017_2022.csv.gz",
                      dtype={"epoch": "int64"}, keep_default_na=False)
    stamp = pd.to_datetime(raw["epoch"], unit="s", utc=True)
    keep = (stamp >= SPAN_START) & (stamp < SPAN_END)
    raw = raw[keep]
    return pd.DataFrame({
        "ts": raw["epoch"],
        "source": "reddit:r/Bitcoin",
        "title": raw["title"],
        # The titles file carries no selftext (the parquet that does needs pyarrow).
        "text": "",
        "url": "https://www.reddit.com" + raw["permalink"],
    })


def main() -> None:
    out = pd.concat([_news(), _reddit()], ignore_index=True)
    out = out.sort_values(["ts", "source", "title"], kind="stable").reset_index(drop=True)
    # mtime 0 keeps the gzip bytes reproducible.
    out.to_csv(OUT, index=False, compression={"method": "gzip", "mtime": 0})
    counts = out["source"].value_counts().to_dict()
    sys.stdout.write(f"{OUT}: {len(out)} items {counts}\n")


if __name__ == "__main__":
    main()
