"""Market data in, venue-neutral: the websocket connection loop, edge sanity checks, Binance
trades and klines, candles, and recorded datasets with their no-look-ahead replay."""
