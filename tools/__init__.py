"""Plain-Python tools the nodes call: indicators, fair value, fees, sentiment, brokers, journal."""
