"""``updown run`` as a fork-server child for the restart (SIGKILL) tests.

``run(argv, env, out_path)`` replaces the environment, sends stdout and stderr to
``out_path`` and runs the command line exactly as the console script does.
"""

from __future__ import annotations

import os
import sys


def run(argv: list[str], env: dict[str, str], out_path: str, cwd: str) -> None:
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)  # no .env of the developer's is read
    out = open(out_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (lives as long as the child)
    os.dup2(out.fileno(), 1)
    os.dup2(out.fileno(), 2)
    sys.stdout = sys.stderr = out
    sys.argv = ["updown", *argv]
    from agent.cli.app import main

    main()
