"""Offline evaluation suite: does the agent beat the market on recorded data?

* ``runner``: ``updown eval --dataset``: replay a recorded dataset through the live graph and
  score forecasts (agent, market mid, fair value, coin flip), paper trading, cost and speed.
* ``replay``: the replay itself (``evals.replay_runner.ReplayRunner``), optionally parallel over a
  process pool with exact verification of each chunk's ledger.
* ``metrics``: pure metric functions (Brier, log loss, ECE, reliability, drawdown, bootstrap).
* ``forecast``: ``updown eval --history``: the forecast-only study over a 1-minute history.
* ``report``: self-contained HTML reports; ``commands``: the CLI; ``bench``: the eval bench;
  ``tracking``: optional LangSmith experiment logging.
"""
