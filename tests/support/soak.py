"""The soak command: ``.venv/bin/python tests/soak.py --windows 96`` (see tests/soakkit.py).

Runs ``updown run --live`` over accelerated windows against loopback feeds and the fake CLOB
venue with faults sprinkled in, prints the figures, and exits 1 unless there were no crashes,
the journal equals the venue's ledger and nothing is left unresolved.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))


def main(argv: list[str] | None = None) -> int:
    from soakkit import run_soak

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--windows", type=int, default=96)
    parser.add_argument("--length", type=int, default=3, help="window length in seconds")
    parser.add_argument("--seed", type=int, default=96)
    parser.add_argument("--dir", type=Path, default=None,
                        help="keep journal, checkpoints, status and log here")
    args = parser.parse_args(argv)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="updown-soak-"))

    def progress(done: int, total: int, rss: int | None) -> None:
        shown = "-" if rss is None else f"{rss / 1024:.1f} MiB"
        print(f"  window {done}/{total}  runner RSS {shown}", flush=True)

    print(f"soak: {args.windows} windows of {args.length}s, live mode against loopback "
          f"fakes, files in {workdir}", flush=True)
    result = run_soak(workdir, windows=args.windows, length_s=args.length, seed=args.seed,
                      progress=progress)
    for line in result.lines():
        print(line)
    ok = (result.crashes == 0 and not result.ledger_problems and not result.unresolved
          and result.windows >= args.windows)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
