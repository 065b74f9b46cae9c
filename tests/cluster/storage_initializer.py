"""The entrypoint of the real node's storage-initializer image: `<uri> <dest-dir>`, as the operator's init
container passes them, fetched by KServe's own storage code (the kserve-storage package), which is what
KServe's storage-initializer image runs. The package has no command of its own.

A failure ends in one line, also written to the termination log, so the kubelet reports the storage code's
own words (the operator quotes them in status) rather than a traceback's first line.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

TERMINATION_LOG = Path("/dev/termination-log")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} <uri> <dest-dir>", file=sys.stderr)
        return 2
    from kserve_storage import Storage

    uri, dest = argv[1], argv[2]
    try:
        Storage.download(uri, dest)
    except Exception as exc:  # every failure is reported the same way: what, where, the storage code's words
        line = f"fetching {uri} failed: {_told(exc)}"
        if exc.__cause__ is not None:  # the storage code's summary, then what the store itself answered
            line += f" (from {_told(exc.__cause__)})"
        print(line, file=sys.stderr)
        with contextlib.suppress(OSError):  # not in a pod
            TERMINATION_LOG.write_text(line[:4000])
        return 1
    return 0


def _told(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


if __name__ == "__main__":
    sys.exit(main(sys.argv))
