"""The publisher the C front-end execs (``producer/native``): what ``hook``'s forked child does.

``python -I -c … CONFIG LOCK [NAME SPOOL_DIR SPOOLED]``: the C foreground has already
detached it (a session of its own, stdio on /dev/null, nice 10, an environment of ``PATH``
alone) and handed it the publisher lock as descriptor 3 (``LOCK`` "3"), or "-2" when the
child is to take it itself. With a record in memory (the C deadline fired before it was
surely spooled), the record is on descriptor 4, and ``SPOOLED`` "1" says it may be in the
spool already. Whatever ends it leaves one line in syslog, as the Python hook's child does.
"""

from __future__ import annotations

import os

from producer import hook, spool

HANDOFF_FD = 4


def main(argv: list[str]) -> None:
    """Publish as ``hook._spawn_publisher``'s child does; never returns."""
    try:
        config_path, lock_fd = argv[0], int(argv[1])
        handoff = None
        if len(argv) == 5:
            handoff = spool.Handoff((argv[2], _read_all(HANDOFF_FD), argv[3], argv[4] == "1"))
        from producer.publisher import publish_detached  # noqa: PLC0415 - as in hook's child

        publish_detached(config_path, lock_fd, handoff)
    except BaseException as exc:
        hook.log_crash(exc)
    finally:
        os._exit(0)


def _read_all(fd: int) -> bytes:
    chunks = []
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)
