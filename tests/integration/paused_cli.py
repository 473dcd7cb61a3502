"""`python -m tests.integration.paused_cli READY STEP -- ARGS...`: the tdd-priv CLI (`main(ARGS)`)
that pauses at STEP, after writing its PID to the file READY, so that a test can send it a
signal at a known moment:

- `report`: in the report step, once both staging folders exist (before the figures);
- `cache`: in a cache write, once the embeddings are in their temporary file.

Stop signals start with their default handling, whatever the test process had.
"""

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any


def _pause(ready: Path) -> None:
    ready.write_text(str(os.getpid()), encoding="utf-8")
    time.sleep(600)


def main() -> int:
    ready_file, step, separator, *args = sys.argv[1:]
    assert separator == "--", __doc__
    ready = Path(ready_file)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    if step == "report":
        import tdd_priv.report.folder as folder

        draw = folder.draw_figures

        def paused_draw(*given: Any, **named: Any) -> Any:
            _pause(ready)
            return draw(*given, **named)

        folder.draw_figures = paused_draw
    elif step == "cache":
        import tdd_priv.encode as encode

        atomic_write = encode._atomic_write

        def paused_write(path: Any, write: Any) -> None:
            def write_then_pause(handle: Any) -> None:
                write(handle)
                handle.flush()
                _pause(ready)  # the embeddings are in their temporary file

            atomic_write(path, write_then_pause)

        encode._atomic_write = paused_write
    else:
        raise SystemExit(f"unknown step {step!r}")
    from tdd_priv.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
