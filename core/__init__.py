"""The shared vocabulary: typed records, settings, clock, logging, the market snapshot, fees,
errors and the pure decision rules (guard, policy).  Imports nothing from the project."""
