"""The logouts a flush sends: wtmp's and wtmpdb's since the last flush (``producer.sessions``
says how they are read and paired), and the cursor that moves once they are confirmed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from producer import sessions, wtmp, wtmpdb
from producer.shared import log
from schemas.config import Config
from schemas.records import Logout


@dataclass
class Recovery:
    """The logouts found since the last commit, and the cursor that commit will save."""

    spool_dir: str
    state: dict[str, Any]
    logouts: list[Logout] = field(default_factory=list)

    @classmethod
    def load(cls, config: Config) -> Recovery:
        """Read wtmp and wtmpdb on from the saved cursor; never raises for a record file
        (a damaged or unreadable one is logged and skipped)."""
        state = sessions.load_state(config.spool.dir)
        host = config.host.name or os.uname().nodename
        found = cls(config.spool.dir, state)
        if config.host.wtmp:
            try:
                found.logouts += wtmp.recover(config.host.wtmp, state, host)
            except OSError as exc:
                log(f"logouts: {config.host.wtmp} unreadable: {exc}")
        if config.host.wtmpdb:
            try:
                found.logouts += wtmpdb.recover(config.host.wtmpdb, state, host)
            except wtmpdb.Unreadable as exc:
                log(f"logouts: {config.host.wtmpdb} unreadable: {exc}")
        return found

    def commit(self) -> None:
        """Save the cursor (the broker confirmed the logouts); a failure is logged: the
        next flush sends them again, under the same ids."""
        try:
            sessions.save_state(self.spool_dir, self.state)
        except OSError as exc:
            log(f"logouts: cursor not saved ({exc}); they will be sent again")
