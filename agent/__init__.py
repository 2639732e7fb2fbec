"""The agent: settings, records, guard, policy, LLM seam, runner and CLI."""
