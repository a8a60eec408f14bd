"""What an intruder does next, through the real worker, broker and SMTP server: a login
after a brute force (never folded), a key the user never used, impossible travel."""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest

from schemas.event import Outcome, PamType, encode
from tests.support.factories import T0, event
from tests.support.mmdb import city, write_mmdb
from tests.support.services import Vhost
from tests.support.smtp_server import SmtpServer
from tests.support.worker_helpers import (
    central_sections,
    loginwatch,
    publish,
    running_worker,
)

pytestmark = pytest.mark.integration

ATTACKER = "198.51.100.7"
ATTACKER_INNER = "203.0.113.9"  # an address a lying web-1 claims as its own
ROUTE = """
[policy]
flood_max = 3

[[route]]
to = ["ops@test.example"]
"""


def config_at(tmp_path: Path, vh: Vhost, port: int, geoip: Path | None = None) -> Path:
    text = central_sections(vh.url(), port, tmp_path, "1, 2")
    if geoip is not None:
        text = text.replace("dns = false", f'dns = false\ngeoip_db = "{geoip}"')
    path = tmp_path / "central.toml"
    path.write_text(text + ROUTE, encoding="utf-8")
    assert loginwatch("setup", "--config", str(path)).returncode == 0
    return path


def failure(n: int, user: str = "root") -> bytes:
    return encode(event(pam_type=PamType.AUTH, outcome=Outcome.FAILURE, user=user,
                        client_ip=ATTACKER, rhost=ATTACKER, auth_method="password",
                        key_type="", key_sha256=b"", client_port=40000 + n,
                        time=T0 + timedelta(seconds=n)))  # fmt: skip


def rows_of(store: Path, sql: str) -> list[tuple[object, ...]]:
    if not store.exists():
        return []
    with sqlite3.connect(store) as db:
        return db.execute(sql).fetchall()


def heartbeat(vh: Vhost, beat: bytes, store: Path) -> None:
    """Publish a heartbeat and wait until the worker noted its addresses."""
    publish(vh, beat, routing_key="guest.heartbeat")
    deadline = time.monotonic() + 30
    while not rows_of(store, "SELECT host FROM host_address"):
        assert time.monotonic() < deadline, "the heartbeat was not noted"
        time.sleep(0.2)


def body(message: object) -> str:
    return message.get_body(("plain",)).get_content()  # type: ignore[attr-defined,no-any-return]


def test_a_login_after_37_failed_passwords_says_so_and_is_never_folded(
    vh: Vhost, tmp_path: Path
) -> None:
    """37 failed passwords fold after flood_max (3 alerts and a burst mail); the login from
    the same address still comes at once, saying how many failed before it."""
    with SmtpServer() as smtp:
        config = config_at(tmp_path, vh, smtp.port)
        with running_worker(config, tmp_path / "worker.log") as worker:
            for n in range(37):
                publish(vh, failure(n))
            worker.wait_for("folded", timeout=30)
            # A login on the same host, after the flood budget of logins was spent too.
            for n in range(4):
                publish(vh, encode(event(user=f"u{n}", client_ip="192.0.2.10", client_port=n)))
            smtp.wait_for(8, timeout=30)
            publish(vh, encode(event(user="root", client_ip=ATTACKER, rhost=ATTACKER,
                                     auth_method="password", key_type="", key_sha256=b"",
                                     time=T0 + timedelta(minutes=1))))  # fmt: skip
            mails = smtp.wait_for(9, timeout=30)
    login = mails[-1].message
    assert str(login["Subject"]).startswith("AFTER BRUTE FORCE: Login root@web-01 from 198.51")
    text = body(login)
    assert "*** Login after 37 failed passwords from this address in the last 10 minutes. ***" \
        in text  # fmt: skip
    assert "never folded" in text
    # The failed passwords themselves never say NEW SOURCE: every brute-force source is new.
    failed = [str(m.message["Subject"]) for m in mails if "Failed" in str(m.message["Subject"])]
    assert failed == ["Failed login root@web-01 from 198.51.100.7"] * 3


def test_a_key_the_user_never_used_is_flagged_from_a_familiar_address(
    vh: Vhost, tmp_path: Path
) -> None:
    with SmtpServer() as smtp:
        config = config_at(tmp_path, vh, smtp.port)
        with running_worker(config, tmp_path / "worker.log"):
            publish(vh, encode(event()))
            publish(vh, encode(event(client_port=2, time=T0 + timedelta(minutes=5))))
            publish(vh, encode(event(client_port=3, key_sha256=b"\x01" * 32,
                                     time=T0 + timedelta(minutes=9))))  # fmt: skip
            mails = smtp.wait_for(3, timeout=30)
    subjects = [str(m.message["Subject"]) for m in mails]
    assert subjects[0].startswith("NEW SOURCE: Login alice@web-01")
    assert subjects[1].startswith("Login alice@web-01")  # the same key, the same address
    assert subjects[2].startswith("NEW KEY: Login alice@web-01")
    assert "*** A key alice never used before. ***" in body(mails[2].message)


def test_impossible_travel_names_both_places_times_and_the_distance(
    vh: Vhost, tmp_path: Path
) -> None:
    geoip = tmp_path / "city.mmdb"
    write_mmdb(geoip, {
        "192.0.2.0/24": city("DE", "Germany", "Berlin", at=(52.52, 13.405), radius=20),
        "198.51.100.0/24": city("JP", "Japan", "Tokyo", at=(35.6762, 139.6503), radius=50),
        "203.0.113.0/24": city("DE", "Germany", at=(51.0, 9.0), radius=1000),
    })  # fmt: skip
    with SmtpServer() as smtp:
        config = config_at(tmp_path, vh, smtp.port, geoip)
        with running_worker(config, tmp_path / "worker.log"):
            publish(vh, encode(event()))  # Berlin, 12:00
            # A country-level guess (radius 1000 km) ten minutes later: no wolf.
            publish(vh, encode(event(client_ip="203.0.113.9", time=T0 + timedelta(minutes=10))))
            # Tokyo an hour after Berlin, on another host.
            publish(vh, encode(event(client_ip="198.51.100.20", host="db-1",
                                     time=T0 + timedelta(hours=1))))  # fmt: skip
            mails = smtp.wait_for(3, timeout=30)
    subjects = [str(m.message["Subject"]) for m in mails]
    assert not subjects[1].startswith("IMPOSSIBLE TRAVEL")
    assert subjects[2].startswith("IMPOSSIBLE TRAVEL: Login alice@db-1 from 198.51.100.20")
    text = body(mails[2].message)
    assert "travel: DE (203.0.113.9 on web-01) at 2026-11-26 12:10:00 UTC, then" in text
    assert "Tokyo, JP (198.51.100.20 on db-1) at 2026-11-26 13:00:00 UTC" in text
    assert "km apart" in text and "km/h" in text


def test_a_sudo_names_the_ssh_login_of_its_session(vh: Vhost, tmp_path: Path) -> None:
    """Linked by the audit session; where pam_loginuid left none, by the sshd process
    (with its start time: a pid that came back is another session); else no login."""
    login = event(client_ip=ATTACKER, rhost=ATTACKER, audit_session=4, session_pid=1234,
                  session_start=99)  # fmt: skip
    bare = event(user="bob", client_port=7, session_pid=2222, session_start=5)

    def sudo(n: int, **fields: object) -> bytes:
        return encode(event(service="sudo", user="root", ruser=fields.pop("ruser", "alice"),
                            client_ip="", rhost="", tty="/dev/pts/0", auth_method="",
                            key_type="", key_sha256=b"", client_port=n,
                            time=T0 + timedelta(minutes=n), **fields))  # fmt: skip

    with SmtpServer() as smtp:
        config = config_at(tmp_path, vh, smtp.port)
        with running_worker(config, tmp_path / "worker.log"):
            publish(vh, encode(login))
            publish(vh, encode(bare))
            smtp.wait_for(2, timeout=30)
            publish(vh, sudo(1, audit_session=4, session_pid=1234, session_start=99))
            publish(vh, sudo(2, ruser="bob", session_pid=2222, session_start=5))
            publish(vh, sudo(3, ruser="bob", session_pid=2222, session_start=6))
            mails = smtp.wait_for(5, timeout=30)
    escalations = [m.message for m in mails[2:]]
    assert [str(m["Subject"]).split(" from")[0] for m in escalations] == [
        "ESCALATION: Sudo root@web-01"] * 3  # fmt: skip
    texts = [body(m) for m in escalations]
    key = login.fingerprint
    assert (f"*** alice, in over SSH from 198.51.100.7 with key {key}, became root on web-01"
            " via sudo (linked by audit session 4). ***") in texts[0]  # fmt: skip
    assert ("*** bob, in over SSH from 192.0.2.10 with key"
            f" {key}, became root on web-01 via sudo (linked by sshd process 2222). ***"
            in texts[1])  # fmt: skip
    assert "*** bob became root on web-01 via sudo (no login found" in texts[2]


def test_a_hop_through_the_bastion_names_the_original_client(vh: Vhost, tmp_path: Path) -> None:
    """The bastion's heartbeat lists its inner address; alice logs in to the bastion from
    her laptop, then to db-1 from that inner address two seconds later: db-1's alert names
    the laptop and the chain, and first-seen asks about the laptop (new), not the bastion."""
    from schemas import wire
    from schemas.records import Heartbeat

    laptop, inner = "198.51.100.77", "10.0.0.1"
    addresses = (bytes([10, 0, 0, 1]), bytes([192, 0, 2, 1]))
    beat = wire.encode(Heartbeat(id=b"\x07" * 16, time=T0, host="bastion", addresses=addresses))
    with SmtpServer() as smtp:
        config = config_at(tmp_path, vh, smtp.port)
        with running_worker(config, tmp_path / "worker.log"):
            heartbeat(vh, beat, tmp_path / "store.db")
            publish(vh, encode(event(host="bastion", client_ip=laptop, rhost=laptop,
                                     session_pid=400, session_start=1)))  # fmt: skip
            publish(vh, encode(event(host="db-1", client_ip=inner, rhost=inner,
                                     session_pid=500, session_start=1,
                                     time=T0 + timedelta(seconds=2))))  # fmt: skip
            # Much later, from the same inner address: no hop (outside hop_window).
            publish(vh, encode(event(host="db-1", client_ip=inner, rhost=inner, client_port=9,
                                     time=T0 + timedelta(minutes=5))))  # fmt: skip
            mails = smtp.wait_for(3, timeout=30)
    by_host = [m.message for m in mails]
    db1 = [m for m in by_host if "@db-1" in str(m["Subject"])]
    assert str(db1[0]["Subject"]).startswith("VIA JUMP HOST: Login alice@db-1 from 10.0.0.1")
    text = body(db1[0])
    assert "*** Logged in through a jump host: 198.51.100.77 → bastion → db-1" in text
    assert "the original client is 198.51.100.77" in text
    assert "FIRST TIME" in text  # the laptop is new to db-1 (not the bastion's address)
    assert "through a jump host" not in body(db1[1])


def test_a_lying_jump_host_cannot_make_a_new_source_read_as_a_known_one(
    vh: Vhost, tmp_path: Path
) -> None:
    """The textbook laundering: alice's laptop is familiar on db-1. A compromised web-1
    lists the attacker's address as its own in its heartbeat and forges a login of alice
    from the laptop; the attacker then logs in to db-1 as alice two seconds later. The
    alert names the chain web-1 claims, and still says the source is new: the attacker's
    address never logged in to db-1."""
    from schemas import wire
    from schemas.records import Heartbeat

    laptop = "198.51.100.77"
    beat = wire.encode(Heartbeat(id=b"\x08" * 16, time=T0, host="web-1",
                                 addresses=(bytes([203, 0, 113, 9]),)))  # fmt: skip
    with SmtpServer() as smtp:
        config = config_at(tmp_path, vh, smtp.port)
        with running_worker(config, tmp_path / "worker.log"):
            publish(vh, encode(event(host="db-1", client_ip=laptop, rhost=laptop,
                                     time=T0 - timedelta(minutes=1))))  # fmt: skip
            smtp.wait_for(1, timeout=30)
            heartbeat(vh, beat, tmp_path / "store.db")
            publish(vh, encode(event(host="web-1", client_ip=laptop, rhost=laptop,
                                     session_pid=400, session_start=1)))  # fmt: skip
            publish(vh, encode(event(host="db-1", client_ip=ATTACKER_INNER,
                                     rhost=ATTACKER_INNER, session_pid=500, session_start=1,
                                     time=T0 + timedelta(seconds=2))))  # fmt: skip
            mails = smtp.wait_for(3, timeout=30)
    db1 = [m.message for m in mails if "@db-1" in str(m.message["Subject"])]
    assert "198.51.100.77 → web-1 → db-1" in body(db1[1])
    assert "*** FIRST TIME: alice has never logged in from this address" in body(db1[1])


def test_a_logout_from_wtmp_names_its_login_and_the_sessions_length(
    vh: Vhost, tmp_path: Path
) -> None:
    """Linked by the audit session; a record without one (wtmp) by the login's time and
    address."""
    from schemas import wire
    from schemas.records import Logout, LogoutSource

    first = event(audit_session=9, session_pid=700, session_start=3)
    second = event(user="bob", client_port=5, time=T0 + timedelta(minutes=1))

    def logout(n: int, user: str, began: timedelta, length: timedelta, **fields: object) -> bytes:
        return wire.encode(Logout(id=bytes([n]) * 16, time=T0 + began + length, host="web-01",
                                  user=user, tty="pts/0", login_time=T0 + began,
                                  client_ip=bytes([192, 0, 2, 10]), source=LogoutSource.WTMP,
                                  **fields))  # type: ignore[arg-type]  # fmt: skip

    with SmtpServer() as smtp:
        config = config_at(tmp_path, vh, smtp.port)
        with running_worker(config, tmp_path / "worker.log"):
            publish(vh, encode(first))
            publish(vh, encode(second))
            smtp.wait_for(2, timeout=30)
            publish(vh, logout(1, "alice", timedelta(0), timedelta(hours=1, minutes=5),
                               audit_session=9), routing_key="guest.logout")  # fmt: skip
            publish(vh, logout(2, "bob", timedelta(minutes=1, seconds=1),
                               timedelta(seconds=42)), routing_key="guest.logout")  # fmt: skip
            mails = smtp.wait_for(4, timeout=30)
    ends = {str(m.message["Subject"]).split(" from")[0]: body(m.message) for m in mails[2:]}
    assert set(ends) == {"Logout alice@web-01", "Logout bob@web-01"}
    assert (
        f"*** Session of 1 h 05 min, from the login at 2026-11-26 12:00:00 UTC (event"
        f" {first.id_hex}, linked by audit session 9). ***"
    ) in ends["Logout alice@web-01"]
    assert (f"*** Session of 42 s, from the login at 2026-11-26 12:01:00 UTC (event"
            f" {second.id_hex}, linked by the login's time and address). ***"
            in ends["Logout bob@web-01"])  # fmt: skip
