"""What the agent acts with: indicators, fair value, sentiment sources, the LLM seam, brokers
(paper; the live one in ``tools.polymarket``), the journal and the decision log."""
