"""The application: the `updown` CLI, the autonomous runner, the live session, the operator
views (terminal, status, dashboard) and the benchmarks.  The top floor: imports every layer."""
