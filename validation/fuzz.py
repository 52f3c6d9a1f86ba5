"""Long fuzzing runs: ``python validation/fuzz.py --minutes 30``.

Runs the Hypothesis properties of ``tests/python/test_fuzz.py`` (``TARGETS``: public entry points
and the compiled ``_core`` functions) and of ``tests/python/test_fuzz_fit.py`` (target ``fit``:
``bglmm.fit`` on random data frames and formulas over 1-3 grouping factors, every family) with
fresh random seeds, round after round, until the time
is up; prints every falsifying example and a summary. A crash of the interpreter (segfault) ends
the run with a non-zero status; run under ``python -X faulthandler`` to get the C stack.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
import traceback

from hypothesis import HealthCheck, given, settings

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "python"))

import test_fuzz  # noqa: E402
import test_fuzz_fit  # noqa: E402

TARGETS = {**test_fuzz.TARGETS, **test_fuzz_fit.TARGETS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--examples", type=int, default=500, help="examples per round and target")
    ap.add_argument("--targets", default=",".join(TARGETS),
                    help=f"comma-separated, of: {', '.join(TARGETS)}")
    args = ap.parse_args(argv)
    deadline = time.monotonic() + 60.0 * args.minutes
    names = args.targets.split(",")
    rounds = examples = 0
    failures: list[str] = []
    start = time.monotonic()
    while time.monotonic() < deadline:
        for name in names:
            strategy, prop = TARGETS[name]
            run = settings(max_examples=args.examples, deadline=None, derandomize=False,
                           database=None, suppress_health_check=list(HealthCheck))(
                given(strategy)(prop))
            try:
                run()
            except Exception:  # noqa: BLE001 - report every falsifying example
                failures.append(f"{name}:\n{traceback.format_exc()}")
                print(failures[-1], flush=True)
            examples += args.examples
        rounds += 1
        print(f"# round {rounds}: {examples} examples, {len(failures)} failures, "
              f"{time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    print(f"fuzzing: {rounds} rounds, {examples} examples in {time.monotonic() - start:.0f} s, "
          f"targets {names}: {len(failures)} falsifying rounds")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
