"""Everything specific to Polymarket: discovery, REST, order building and signing, the market
channel, reference prices, the price to beat, the live snapshot, settlement and reconciliation."""
