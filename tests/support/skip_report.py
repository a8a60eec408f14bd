"""The last line of a test run says which tiers it skipped, and why (a pytest plugin; tests/
conftest.py takes its hooks).

A missing service skips a test locally (``services.missing``: "not available: PostgreSQL at
…"), so a run can look green while a whole tier, every PostgreSQL store test or every test of
several machines, never ran. pytest's own closing line counts the skips; this line, printed
after it, names them: ``skipped tiers: 32 tests without PostgreSQL at …; 36 without root and
iproute2 (network namespaces)``. A run that skipped nothing prints nothing more.
"""

from __future__ import annotations

from collections import Counter

import pytest

_SKIPS: Counter[str] = Counter()


def _why(report: pytest.TestReport) -> str:
    """What the skipped test lacked, without the details of this one attempt."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    reason = reason.removeprefix("Skipped: ").removeprefix("not available: ")
    return reason.split(" (", 1)[0].strip()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPS[_why(report)] += 1


def pytest_unconfigure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not _SKIPS:
        return  # an xdist worker: its reports reach the controller, which prints the line
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    parts = [f"{count} without {why}" for why, count in _SKIPS.most_common()]
    total = sum(_SKIPS.values())
    reporter.write_line(f"skipped tiers: {total} test(s): {'; '.join(parts)}")
