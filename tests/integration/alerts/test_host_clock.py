"""A host's clock in the alert mail (issue 9 item 7): the event's time is the host's word,
the central side says when it arrived and names a clock more than five minutes off."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from consumer.alerts import pipeline
from consumer.core import clock
from consumer.core.decisions import Action, Decision
from consumer.stages.decode import Incoming
from consumer.stages.enrich import Enricher
from consumer.stages.notice import alert_view
from consumer.store import open_store
from schemas.config import parse_config
from schemas.errors import DecodeError
from schemas.event import encode
from schemas.wire import decode_event as decode
from tests.support.factories import T0, enriched, event
from tests.support.fakes import Outbox
from tests.support.services import Vhost
from tests.support.smtp_server import SmtpServer, text_part
from tests.support.worker_helpers import loginwatch, publish, running_worker, write_config

ALERT = Decision(action=Action.IMMEDIATE, reason="route #1 matches", recipient="ops@example.org")


@pytest.mark.parametrize(
    ("host_time", "arrived", "note"),
    [
        (T0, T0, None),
        (T0 + timedelta(minutes=5), T0, None),  # the tolerance itself
        (T0 - timedelta(minutes=5, seconds=1), T0, "5 min (behind"),
        (T0 + timedelta(days=3 * 365 + 40, hours=5), T0, "3 y 40 d (ahead"),
        (T0 - timedelta(days=2, hours=3, minutes=4), T0, "2 d 3 h (behind"),
        # The wire's bounds (365-day years); a naive time is a decode error (below).
        (datetime(2262, 4, 10, tzinfo=UTC), T0, "235 y 191 d (ahead"),
        (datetime(1970, 1, 1, tzinfo=UTC), T0, "56 y 343 d (behind"),
    ],
)
def test_the_alert_names_a_host_clock_more_than_five_minutes_off(
    host_time: datetime, arrived: datetime, note: str | None
) -> None:
    view = alert_view(enriched(event(time=host_time), received=arrived), ALERT)
    skew = [n for n in view.notes if "clock" in n]
    if note is None:
        assert skew == []
        return
    assert len(skew) == 1
    assert skew[0].startswith(f"Host clock off by {note}")
    assert skew[0].endswith(f"loginwatch received it {arrived:%Y-%m-%d %H:%M:%S UTC}.")


def test_behind_also_names_the_spool() -> None:
    assert clock.describe(-3600) == (
        "host clock off by 1 h (behind the arrival time, or the event waited in the host's spool)"
    )


def test_the_enricher_records_the_arrival(tmp_path: Path) -> None:
    config = parse_config('[enrich]\ndns = false\n[smtp]\nfrom = "a@example.org"')
    with open_store(str(tmp_path / "lw.db")) as store:
        now = T0 + timedelta(days=400)
        assert Enricher(config.enrich, store)(event(), now).received == now


@pytest.mark.parametrize(
    "text", ["2026-11-26T12:00:00", "2026-11-26T12:00:00.123456", "9999-12-31T23:59:59"]
)
def test_a_host_time_without_a_zone_goes_dead_and_mails_nothing(tmp_path: Path, text: str) -> None:
    """A naive time reached the mail, then failed after the send (naive minus aware), so
    every redelivery mailed the alert once more."""
    raw = msgspec.msgpack.decode(encode(event()))
    raw[2] = text  # msgspec reads an ISO string as a datetime, naive without an offset
    body = msgspec.msgpack.encode(raw)
    with pytest.raises(DecodeError, match=r"timezone component - at `\$\[2\]`"):
        decode(body)
    config = parse_config(f'[store]\nurl = "{tmp_path / "lw.db"}"\n[enrich]\ndns = false\n'
                          '[smtp]\nfrom = "a@example.org"\n'
                          '[[route]]\nto = ["ops@example.org"]\nmode = "immediate"\n')  # fmt: skip
    outbox = Outbox()
    stages = dataclasses.replace(pipeline.build_stages(config), send=outbox)
    try:
        outcomes = [pipeline.process(stages, Incoming(body, None)) for _ in range(3)]
    finally:
        stages.close()
    assert {(o.verdict.value, "timezone" in o.reason) for o in outcomes} == {("dead", True)}
    assert outbox.sent == []


@pytest.mark.integration
def test_a_worker_mails_a_forward_dated_login_with_the_clock_note(
    vh: Vhost, tmp_path: Path
) -> None:
    years_ahead = datetime.now(UTC) + timedelta(days=5 * 365 + 30)
    with SmtpServer() as smtp:
        config = write_config(tmp_path / "loginwatch.toml", vh, smtp_port=smtp.port)
        assert loginwatch("setup", "--config", str(config)).returncode == 0
        with running_worker(config, tmp_path / "worker.log"):
            future = event(time=years_ahead, host="skewed-1")
            publish(vh, encode(future), message_id=future.id_hex)
            mail = smtp.wait_for(1)[0].message
    text = text_part(mail)
    assert "Host clock off by 5 y" in text
    assert "(ahead of the arrival time)" in text
