"""The spool's slots, record format, dropped ledger and backlog, without a broker."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from producer import backlog, capture, ledger, slots, spool
from producer.build import build_event
from schemas.event import MAX_DROPPED_LISTED, DroppedEvent, Outcome, PamType, encode
from schemas.wire import decode_event as decode
from tests.support.hookrun import PAM_ENV, spool_records

LOGIN = {k.encode(): v.encode() for k, v in PAM_ENV.items()}
FAILURE = {b"PAM_TYPE": b"auth", b"PAM_USER": b"root", b"PAM_RHOST": b"203.0.113.66"}
BIG = 1 << 30


def _record(env: dict[bytes, bytes], n: int, outcome: str = "") -> tuple[str, bytes]:
    return capture.record(env, outcome, n)


def _spool(directory: Path, env: dict[bytes, bytes], n: int, outcome: str = "", **b: int) -> int:
    name, data = _record(env, n, outcome)
    return spool.write(str(directory), name, data, b.get("max_events", 10**6), BIG)


def _prepared(directory: Path) -> Path:
    directory.mkdir(mode=0o700, exist_ok=True)
    with backlog.Backlog(str(directory)) as spooled:
        spooled.prepare()
    return directory


def _users(directory: Path) -> list[bytes]:
    return [capture.parse(data)["PAM_USER"] for data in spool_records(directory)]


# --- the record format --------------------------------------------------------------


def test_a_record_carries_its_kind_time_length_and_crc() -> None:
    _, data = _record(LOGIN, 1_795_669_046_385_507_837)
    found = capture.header(data)
    assert found is not None and found.urgent and found.time_ns == 1_795_669_046_385_507_837
    assert found.size == len(data)
    assert capture.parse(data + bytes(100))["PAM_USER"] == b"alice", "a slot's tail is ignored"
    _, failure = _record(FAILURE, 2, "failure")
    found = capture.header(failure)
    assert found is not None and not found.urgent and found.size == len(failure)


@pytest.mark.parametrize("cut", [1, 10, capture.HEADER_SIZE + 5])
def test_a_record_cut_short_or_damaged_is_never_taken_for_one(cut: int) -> None:
    _, data = _record(LOGIN, 1)
    with pytest.raises(capture.Damaged):
        capture.parse(data[:-cut] + bytes(cut))  # what a slot holds after a cut write
    damaged = bytearray(data)
    damaged[-3] ^= 0x20  # one letter of the key changes case
    with pytest.raises(capture.Damaged):
        capture.parse(bytes(damaged))


def test_the_first_format_is_still_read() -> None:
    old = (
        capture.MAGIC + b"LW_ID=" + b"ab" * 16 + b"\0LW_TIME=5\0PAM_TYPE=open_session\0PAM_USER=bo"
    )
    assert capture.parse(old)["PAM_USER"] == b"bo"
    assert spool.urgent(old)
    drop = ledger.describe(old)
    assert (drop.time_ns, drop.urgent, drop.user) == (5, True, b"bo")


# --- slots ----------------------------------------------------------------------------


def test_records_go_into_slots_without_a_new_inode_or_block(tmp_path: Path) -> None:
    directory = _prepared(tmp_path / "spool")
    before = sorted(os.listdir(directory))
    size = (directory / slots.FILE).stat().st_size
    blocks = (directory / slots.FILE).stat().st_blocks
    for n in range(5):
        assert _spool(directory, LOGIN, n + 1) == 0
    assert sorted(os.listdir(directory)) == before, "no new file"
    assert (directory / slots.FILE).stat().st_size == size == slots.COUNT * slots.SIZE
    assert (directory / slots.FILE).stat().st_blocks == blocks, "written in place"
    assert _users(directory) == [b"alice"] * 5


def test_when_every_slot_is_taken_records_get_files(tmp_path: Path) -> None:
    directory = _prepared(tmp_path / "spool")
    for n in range(slots.COUNT + 3):
        _spool(directory, FAILURE, n + 1, "failure")
    _spool(directory, LOGIN, 10**6)
    files = sorted(p.name for p in directory.glob("*.cap"))
    assert [f.endswith(".low.cap") for f in files] == [True, True, True, False]
    users = _users(directory)
    assert len(users) == slots.COUNT + 4
    assert users[0] == b"alice", "logins first, wherever they lie"


def test_with_no_file_possible_a_login_takes_the_oldest_failures_slot(tmp_path: Path) -> None:
    directory = _prepared(tmp_path / "spool")
    for n in range(slots.COUNT):
        _spool(directory, FAILURE, n + 1, "failure")
    name, data = _record(LOGIN, 10**6)
    # No new file can be made: something already holds the temp file's name (as if
    # the file system had no inode left).
    (directory / f".{name}.tmp").mkdir()
    assert spool.write(str(directory), name, data, 10**6, BIG) == 1
    users = _users(directory)
    assert users[0] == b"alice" and users.count(b"root") == slots.COUNT - 1
    counted = ledger.read(str(directory))
    assert counted.total == 1 and counted.logins == 0
    [lost] = counted.listed
    assert (lost.time_ns, lost.urgent, lost.user, lost.remote) == (
        1,
        False,
        b"root",
        b"203.0.113.66",
    )


def test_with_no_file_possible_and_only_logins_in_slots_a_login_is_refused(tmp_path: Path) -> None:
    directory = _prepared(tmp_path / "spool")
    for n in range(slots.COUNT):
        _spool(directory, LOGIN, n + 1)
    name, data = _record(LOGIN, 10**6)
    (directory / f".{name}.tmp").mkdir()
    with pytest.raises(OSError):
        spool.write(str(directory), name, data, 10**6, BIG)
    assert len(_users(directory)) == slots.COUNT, "no login gives way to another"


def test_the_count_bound_covers_slots_and_files(tmp_path: Path) -> None:
    directory = _prepared(tmp_path / "spool")
    for n in range(3):
        _spool(directory, FAILURE, n + 1, "failure", max_events=3)
    with pytest.raises(spool.SpoolFull, match="3 events spooled"):
        _spool(directory, FAILURE, 4, "failure", max_events=3)
    assert _spool(directory, LOGIN, 5, max_events=3) == 1
    assert sorted(_users(directory)) == [b"alice", b"root", b"root"]
    assert not list(directory.glob("*.cap")), "all in slots"


def test_a_hook_never_writes_a_slot_another_holds(tmp_path: Path) -> None:
    directory = _prepared(tmp_path / "spool")
    fd = os.open(directory / slots.FILE, os.O_RDWR)
    ready, held = os.pipe()
    pid = os.fork()
    if pid == 0:  # another process holds slot 0, as a hook writing it would
        slots.lock(fd, 0)
        os.write(held, b"x")
        time.sleep(30)
        os._exit(0)
    try:
        os.read(ready, 1)
        assert slots.claim(fd, 0) == 1, "slot 0 is skipped"
        slots.unlock(fd, 1)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        for each in (fd, ready, held):
            os.close(each)


# --- the dropped ledger ----------------------------------------------------------------


def _drop(n: int, urgent: bool) -> ledger.Drop:
    return ledger.Drop((n, urgent, b"open_session" if urgent else b"auth",
                        b"" if urgent else b"failure", b"u%d" % n, b"192.0.2.%d" % n,
                        b"sshd"))  # fmt: skip


def test_the_ledger_lists_logins_first_then_the_first_and_latest_failures(tmp_path: Path) -> None:
    spool_dir = str(tmp_path)
    ledger.add(spool_dir, [_drop(n, False) for n in range(1, 11)])
    assert [d.time_ns for d in ledger.read(spool_dir).listed] == [1, 8, 9, 10]
    ledger.add(spool_dir, [_drop(11, True)])
    ledger.add(spool_dir, [_drop(n, False) for n in range(12, 40)])  # a spray after it
    counted = ledger.read(spool_dir)
    assert (counted.total, counted.logins) == (39, 1)
    assert [(d.time_ns, d.urgent) for d in counted.listed] == [
        (1, False), (11, True), (38, False), (39, False)
    ]  # fmt: skip
    ledger.add(spool_dir, [_drop(n, True) for n in range(40, 46)])
    assert [d.time_ns for d in ledger.read(spool_dir).listed] == [11, 43, 44, 45], "logins only"


def test_settling_takes_off_only_what_was_reported(tmp_path: Path) -> None:
    spool_dir = str(tmp_path)
    ledger.add(spool_dir, [_drop(1, True), _drop(2, False)], uncounted=3)
    reported = ledger.read(spool_dir)
    ledger.add(spool_dir, [_drop(3, False)])  # dropped while the event was on its way
    ledger.settle(spool_dir, reported)
    assert ledger.read(spool_dir) == (1, 0, (_drop(3, False),))


def test_the_ledger_is_preallocated_and_reads_the_first_format(tmp_path: Path) -> None:
    (tmp_path / ledger.FILE).write_bytes(b"%020d\n" % 7)  # the counter as older hooks left it
    assert ledger.read(str(tmp_path)) == (7, 0, ())
    assert (tmp_path / ledger.FILE).stat().st_size == ledger.SIZE
    ledger.add(str(tmp_path), [_drop(1, True)])
    assert (tmp_path / ledger.FILE).stat().st_size == ledger.SIZE, "rewritten in place"
    # What an older hook reads of it: the count, in the first line.
    assert int((tmp_path / ledger.FILE).read_bytes()[:21]) == 8


def test_a_report_becomes_the_events_trailing_fields() -> None:
    hostile = ledger.Drop((10**18, True, b"open_session", b"", b"r\xffoot\\" + b"x" * 900,
                           b"2001:db8::" + b"f" * 300, b"sshd"))  # fmt: skip
    report = ledger.Ledger((9, 2, (hostile, _drop(2, False), _drop(2**63 - 1, False))))
    items = capture.parse(_record(LOGIN, 10**18)[1])
    event = decode(encode(build_event(items, "web-01", report)))
    assert (event.dropped, event.dropped_logins) == (9, 2)
    first, second, damaged = event.dropped_list
    assert damaged.time.year == 1970, "a time no clock gives reads as unknown"
    assert isinstance(first, DroppedEvent) and first.kind == "login"
    assert first.user.startswith("r\\xffoot\\\\") and len(first.user) == 64
    assert len(first.remote) == 64
    assert (second.kind, second.user, second.remote) == ("failure", "u2", "192.0.2.2")
    assert (second.pam_type, second.outcome) == (PamType.AUTH, Outcome.FAILURE)


def test_a_key_login_stays_compact_on_the_wire() -> None:
    items = capture.parse(_record(LOGIN, time.time_ns(), "success")[1])
    assert len(encode(build_event(items, "web-01"))) <= 160
    assert MAX_DROPPED_LISTED == ledger.LISTED


# --- what a deadline or a crash leaves ---------------------------------------------------


def _old(path: Path) -> None:
    then = time.time() - backlog.ORPHAN_AGE_S - 1
    os.utime(path, (then, then))


def test_orphaned_temp_files_are_adopted_when_whole_and_counted_when_not(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    whole_name, whole = _record(LOGIN, 1)
    cut_name, cut = _record(FAILURE, 2, "failure")
    fresh_name, fresh = _record(LOGIN, 3)
    old_format = capture.MAGIC + b"LW_ID=" + b"cd" * 16 + b"\0LW_TIME=4\0PAM_USER=carol"
    (directory / f".{whole_name}.tmp").write_bytes(whole)
    (directory / f".{spool.file_name(cut_name, cut)}.tmp").write_bytes(cut[:60])
    (directory / f".{fresh_name}.tmp").write_bytes(fresh[:60])  # a hook writing it now
    (directory / ".00000000000000000004-x.cap.tmp").write_bytes(old_format)
    for path in directory.iterdir():
        if path.name != f".{fresh_name}.tmp":
            _old(path)
    with backlog.Backlog(str(directory)) as spooled:
        assert spooled.adopt_orphans(time.time()) == (2, 1)
    assert sorted(_users(directory)) == [b"alice", b"carol"]
    assert sorted(p.name for p in directory.glob(".*.tmp")) == [f".{fresh_name}.tmp"]
    counted = ledger.read(str(directory))
    assert counted.total == 1 and counted.listed[0].time_ns == 2 and not counted.listed[0].urgent


def test_a_record_whose_write_was_cut_short_is_found_or_its_temp_file_removed(
    tmp_path: Path,
) -> None:
    directory = _prepared(tmp_path / "spool")
    in_slot = _record(LOGIN, 1)
    _spool(directory, LOGIN, 0)  # someone else's record
    spool.write(str(directory), *in_slot, 10**6, BIG)
    whole, cut, absent = _record(LOGIN, 2), _record(LOGIN, 3), _record(LOGIN, 4)
    (directory / f".{whole[0]}.tmp").write_bytes(whole[1])
    (directory / f".{cut[0]}.tmp").write_bytes(cut[1][:-1])
    with backlog.Backlog(str(directory)) as spooled:
        assert spooled.find(*in_slot)
        assert spooled.find(*whole), "adopted"
        assert not spooled.find(*cut), "the publisher sends it from memory"
        assert not spooled.find(*absent)
    assert (directory / whole[0]).read_bytes() == whole[1]
    assert not list(directory.glob(".*.tmp"))


def test_records_of_both_formats_wait_together_in_publishing_order(tmp_path: Path) -> None:
    directory = _prepared(tmp_path / "spool")
    old_login = capture.MAGIC + b"LW_ID=" + b"ef" * 16 + b"\0LW_TIME=5\0PAM_USER=old"
    (directory / "00000000000000000005-old.cap").write_bytes(old_login)
    (directory / "00000000000000000001-old.low.cap").write_bytes(
        capture.MAGIC + b"LW_ID=" + b"01" * 16 + b"\0LW_TIME=1\0PAM_USER=oldfail"
    )
    _spool(directory, FAILURE, 2, "failure")
    _spool(directory, LOGIN, 9)
    assert _users(directory) == [b"old", b"alice", b"oldfail", b"root"]


def test_a_dropped_sudo_is_listed_as_a_sudo_and_an_older_ledger_still_reads(
    tmp_path: Path,
) -> None:
    spool_dir = str(tmp_path)
    sudo = ledger.Drop((5, True, b"open_session", b"", b"root", b"", b"sudo"))
    ledger.add(spool_dir, [sudo])
    [listed] = ledger.read(spool_dir).listed
    assert listed.service == b"sudo"
    report = ledger.read(spool_dir)
    items = capture.parse(_record(LOGIN, 10**18)[1])
    [dropped] = decode(encode(build_event(items, "web-01", report))).dropped_list
    assert (dropped.kind, dropped.service) == ("sudo", "sudo")
    # A ledger an older hook wrote (LWDROP2: six fields, no service) reads as sshd's.
    old = b"%020d\nLWDROP2 1 1\n7\x00U\x00open_session\x00\x00alice\x00192.0.2.7\x00" % 1
    (tmp_path / ledger.FILE).write_bytes(old.ljust(ledger.SIZE, b"\0"))
    [was] = ledger.read(spool_dir).listed
    assert (was.user, was.service, was.urgent) == (b"alice", b"", True)
