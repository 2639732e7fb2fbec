"""Offline evaluation suite over recorded markets (metrics and reports)."""
