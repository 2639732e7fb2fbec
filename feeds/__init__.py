"""Market data: the snapshot type, recorded datasets and their replay, and the live feeds
(Binance, Polymarket RTDS and CLOB market channel, Gamma discovery) behind the same snapshot."""
