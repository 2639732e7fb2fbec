"""Benchmarks (``updown bench --suite ...``).  Timing lives here, never in tests."""
