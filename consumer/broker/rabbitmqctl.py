"""``rabbitmqctl``, run on the broker machine: users, permissions, definitions.

loginwatch needs no management plugin: the few administrative steps (a broker
user per host, importing definitions) go through the CLI RabbitMQ ships, which
must run as root or rabbitmq on the broker machine (it reads the Erlang cookie).
Secrets go through stdin, never argv (``ps`` shows argv to every user).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from schemas.errors import BrokerError

TIMEOUT_S = 60


def run(*args: str, stdin: str | None = None) -> str:
    """``rabbitmqctl -q ARGS``; returns its stdout.

    Raises:
        BrokerError: rabbitmqctl is missing, failed or hung.
    """
    binary = shutil.which("rabbitmqctl")
    if binary is None:
        raise BrokerError("rabbitmqctl not found: run this on the broker machine")
    try:
        proc = subprocess.run(
            [binary, "-q", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BrokerError(f"rabbitmqctl {args[0]}: no answer within {TIMEOUT_S} s") from None
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        raise BrokerError(f"rabbitmqctl {args[0]}: {lines[-1] if lines else 'failed'}")
    return proc.stdout


def run_json(*args: str) -> list[dict[str, Any]]:
    """``rabbitmqctl -q ARGS --formatter json``, decoded.

    Raises:
        BrokerError: rabbitmqctl failed or printed no JSON list.
    """
    out = run(*args, "--formatter", "json")
    try:
        rows = json.loads(out or "[]")
    except json.JSONDecodeError as exc:
        raise BrokerError(f"rabbitmqctl {args[0]}: not JSON: {exc}") from None
    if not isinstance(rows, list):
        raise BrokerError(f"rabbitmqctl {args[0]}: expected a JSON list")
    return rows
