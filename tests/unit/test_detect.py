"""The detections' pure decisions, as tables: brute force, impossible travel, escalation
links, and the words each finding is shown in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consumer.core.detections import Brute, Escalation, Hop, Origin, Spot
from consumer.detect import words
from consumer.detect.brute import brute_force
from consumer.detect.escalation import escalated_to_root, escalation, links, origin
from consumer.detect.hops import hop
from consumer.detect.travel import distance_km, impossible

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
BERLIN = (52.52, 13.405)
PARIS = (48.8566, 2.3522)
TOKYO = (35.6762, 139.6503)
POTSDAM = (52.39, 13.06)


@pytest.mark.parametrize(
    ("host", "fleet", "minimum", "expected"),
    [
        (0, 0, 3, None),  # no failure at all
        (2, 2, 3, None),  # a typo or two
        (3, 3, 3, Brute(host=3, fleet=3, window=600)),
        (37, 37, 3, Brute(host=37, fleet=37, window=600)),
        (0, 12, 3, Brute(host=0, fleet=12, window=600)),  # the fleet's, none here
        (5, 2, 3, Brute(host=5, fleet=5, window=600)),  # fleet read before host's write
        (1, 1, 1, Brute(host=1, fleet=1, window=600)),
    ],
)
def test_brute_force(host: int, fleet: int, minimum: int, expected: Brute | None) -> None:
    assert brute_force(host, fleet, window=600, minimum=minimum) == expected


@pytest.mark.parametrize(
    ("found", "said"),
    [
        (Brute(host=37, fleet=37, window=600),
         "after 37 failed passwords from this address in the last 10 minutes"),
        (Brute(host=1, fleet=1, window=3600),
         "after 1 failed password from this address in the last 1 hour"),
        (Brute(host=4, fleet=10, window=600),
         "after 10 failed passwords from this address in the last 10 minutes"
         " (4 on this host, 6 on other hosts)"),
    ],
)  # fmt: skip
def test_brute_words(found: Brute, said: str) -> None:
    assert words.brute(found) == said


def spot(at: tuple[float, float], minutes: float, radius: float = 5, network: str = "",
         place: str = "") -> Spot:  # fmt: skip
    return Spot(latitude=at[0], longitude=at[1], radius=radius,
                at=T0 + timedelta(minutes=minutes), host="web-1", address="192.0.2.1",
                network=network, place=place)  # fmt: skip


def test_distance_is_the_great_circle() -> None:
    assert distance_km(spot(BERLIN, 0), spot(PARIS, 0)) == pytest.approx(878, abs=5)
    assert distance_km(spot(BERLIN, 0), spot(TOKYO, 0)) == pytest.approx(8918, abs=20)
    assert distance_km(spot(BERLIN, 0), spot(BERLIN, 0)) == 0


@pytest.mark.parametrize(
    ("before", "after", "alarm"),
    [
        (None, spot(TOKYO, 0), False),  # the user's first place
        (spot(BERLIN, 0), spot(TOKYO, 60), True),  # 8,900 km in an hour
        (spot(BERLIN, 0), spot(TOKYO, 16 * 60), False),  # a flight: ~560 km/h
        (spot(BERLIN, 0), spot(PARIS, 30), True),  # 880 km in 30 minutes
        (spot(BERLIN, 0), spot(PARIS, 90), False),  # 880 km in 90 minutes: ~580 km/h
        (spot(BERLIN, 0), spot(POTSDAM, 1), False),  # 27 km: the same metro area
        # Within the accuracy radii: a country-level guess is never far from anything.
        (spot(BERLIN, 0, radius=1000), spot(PARIS, 5, radius=100), False),
        (spot(BERLIN, 0, radius=200), spot(PARIS, 5, radius=200), True),  # 478 km in 5 min
        # The same /24: one network, whatever the database says of its places.
        (spot(BERLIN, 0, network="192.0.2.0/24"), spot(TOKYO, 1, network="192.0.2.0/24"), False),
        (spot(BERLIN, 0, network="192.0.2.0/24"), spot(TOKYO, 1, network="198.51.100.0/24"),
         True),
        # The same instant, and a later login delivered first: still a finite speed.
        (spot(BERLIN, 0), spot(TOKYO, 0), True),
        (spot(TOKYO, 60), spot(BERLIN, 0), True),
        (spot(TOKYO, 16 * 60), spot(BERLIN, 0), False),
    ],
)  # fmt: skip
def test_impossible_travel(before: Spot | None, after: Spot, alarm: bool) -> None:
    found = impossible(before, after, max_kmh=900)
    assert (found is not None) is alarm
    if found is not None:
        assert found.kmh > 900
        assert found.before == before and found.after == after


def test_travel_words_name_both_places_times_and_the_distance() -> None:
    found = impossible(spot(BERLIN, 0, place="Berlin, DE"), spot(TOKYO, 60, place="Tokyo, JP"),
                       max_kmh=900)  # fmt: skip
    assert found is not None
    said = words.travel(found)
    assert "Berlin, DE (192.0.2.1 on web-1) at 2026-05-04 09:00:00 UTC" in said
    assert "Tokyo, JP (192.0.2.1 on web-1) at 2026-05-04 10:00:00 UTC" in said
    assert "8,9" in said and "km apart" in said and "km/h" in said


@pytest.mark.parametrize(
    ("audit", "pid", "expected"),
    [
        (4, 1234, ("audit:4", "pid:1234:99")),
        (None, 1234, ("pid:1234:99",)),  # pam_loginuid left it unset (a container)
        (4294967295, 1234, ("pid:1234:99",)),
        (0, 0, ()),
        (7, 0, ("audit:7",)),
        (None, 1, ()),  # init is no sshd session
    ],
)
def test_links(audit: int | None, pid: int, expected: tuple[str, ...]) -> None:
    assert links(audit, pid, 99) == expected


LOGIN = Origin(event_id="ab" * 16, user="alice", host="web-1", service="sshd",
               source="198.51.100.7", fingerprint="SHA256:" + "A" * 43, at=T0,
               linked_by="audit session 4")  # fmt: skip
OTHER = Origin(event_id="cd" * 16, user="bob", host="web-1", service="sshd", source="192.0.2.9",
               fingerprint="", at=T0, linked_by="sshd process 1234")  # fmt: skip


@pytest.mark.parametrize(
    ("asked", "logins", "expected"),
    [
        (("audit:4", "pid:1234:9"), {"audit:4": LOGIN, "pid:1234:9": OTHER}, LOGIN),
        (("audit:4", "pid:1234:9"), {"pid:1234:9": OTHER}, OTHER),  # the fallback
        (("pid:1234:9",), {"audit:4": LOGIN}, None),
        (("pid:1234:9",), {"pid:1234:8": OTHER}, None),  # the pid came back: another process
        ((), {"audit:4": LOGIN}, None),
    ],
)
def test_origin(asked: tuple[str, ...], logins: dict[str, Origin], expected: Origin | None) -> None:
    assert origin(asked, logins) == expected


@pytest.mark.parametrize(
    ("kind", "target", "root"),
    [("sudo", "", True), ("sudo", "root", True), ("su", "postgres", False), ("login", "", None)],
)
def test_escalation(kind: str, target: str, root: bool | None) -> None:
    found = escalation(kind, target, LOGIN)
    assert (found is None) is (root is None)
    if root is not None:
        assert escalated_to_root(found) is root


def test_escalation_words() -> None:
    said = words.escalation(Escalation(target="root", via="sudo", origin=LOGIN), "alice", "web-1")
    assert said == (f"alice, in over SSH from 198.51.100.7 with key SHA256:{'A' * 43}, became"
                    " root on web-1 via sudo (linked by audit session 4)")  # fmt: skip
    alone = words.escalation(Escalation(target="root", via="su"), "bob\u202e", "web-1")
    assert alone.startswith("bob\\u202e became root on web-1 via su (no login found")


def test_hop_words() -> None:
    found = Hop(client="198.51.100.7", chain=("198.51.100.7", "bastion", "db-1"), via_event="x")
    assert words.hop(found) == ("through a jump host: 198.51.100.7 → bastion → db-1 (the original"
                                " client is 198.51.100.7)")  # fmt: skip


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(42, "42 s"), (720, "12 min"), (3900, "1 h 05 min"), (2 * 86400 + 4 * 3600, "2 d 4 h")],
)
def test_session_length(seconds: float, said: str) -> None:
    assert words.length(seconds) == said


def leg(host: str, seconds: float, user: str = "alice", source: str = "198.51.100.7") -> Origin:
    return Origin(event_id=f"{host}{seconds}", user=user, host=host, service="sshd",
                  source=source, fingerprint="", at=T0 + timedelta(seconds=seconds),
                  linked_by="")  # fmt: skip


BASTION = {"10.0.0.1": ("bastion",), "10.0.0.9": ("db-1",)}


@pytest.mark.parametrize(
    ("source", "logins", "chain"),
    [
        ("10.0.0.1", [leg("bastion", -2)], ("198.51.100.7", "bastion", "db-1")),
        ("10.0.0.1", [leg("bastion", 1)], ("198.51.100.7", "bastion", "db-1")),  # clocks
        ("10.0.0.1", [leg("bastion", -30)], None),  # outside the window
        ("10.0.0.1", [leg("bastion", -2, user="bob")], None),  # another user
        ("10.0.0.1", [leg("web-1", -2)], None),  # a login on a host that owns no such address
        ("192.0.2.5", [leg("bastion", -2)], None),  # not a host's address
        ("10.0.0.9", [leg("db-1", -2)], None),  # its own address: no hop
        # The nearest leg wins.
        ("10.0.0.1", [leg("bastion", -4, source="192.0.2.1"), leg("bastion", -1)],
         ("198.51.100.7", "bastion", "db-1")),
    ],
)  # fmt: skip
def test_hop(source: str, logins: list[Origin], chain: tuple[str, ...] | None) -> None:
    found = hop(user="alice", host="db-1", source=source, at=T0, jump_hosts=BASTION,
                logins=logins, window=5)  # fmt: skip
    assert (found.chain if found else None) == chain
