"""Run `lth` with a fault injected: `python inject.py FAULT -- lth arguments...`.

FAULT is one of
  kill-before-rename=NAME:N   SIGKILL this process at the N-th atomic rename onto a file named NAME,
                              i.e. after the temp file is fully written, before it replaces NAME
  kill-in-epoch=N             SIGKILL this process in epoch N, after its training pass
  slow-epochs=SECONDS         sleep in every evaluation (so a kill from outside lands mid-epoch)
"""

from __future__ import annotations

import os
import signal
import sys
import time


def main() -> int:
    fault, separator, *argv = sys.argv[1:]
    assert separator == "--", __doc__
    kind, _, value = fault.partition("=")
    if kind == "kill-before-rename":
        name, count = value.split(":")
        seen = 0
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            nonlocal seen
            if os.path.basename(dst) == name:
                seen += 1
                if seen == int(count):
                    os.kill(os.getpid(), signal.SIGKILL)
            return real_replace(src, dst, *args, **kwargs)

        os.replace = replace
    elif kind in ("kill-in-epoch", "slow-epochs"):
        import lth.train

        real_evaluate, calls = lth.train.evaluate, 0

        def evaluate(*args, **kwargs):
            nonlocal calls
            calls += 1  # two calls (val, test) per epoch
            if kind == "kill-in-epoch" and calls == 2 * int(value) - 1:
                os.kill(os.getpid(), signal.SIGKILL)
            if kind == "slow-epochs":
                time.sleep(float(value))
            return real_evaluate(*args, **kwargs)

        lth.train.evaluate = evaluate
    else:
        raise SystemExit(f"unknown fault {fault!r}\n{__doc__}")
    from lth.cli import main as lth_main

    return lth_main(argv)


if __name__ == "__main__":
    sys.exit(main())
