"""Shedding per speaker, with the clock in the test's hand."""

from __future__ import annotations

from consumer.alerts.shedding import LOG_EVERY_S, Kind, Message, Shedder

JUNK = Message("host-x", Kind.REFUSED, reason="undecodable event: junk")
FAILED = Message("host-x", Kind.FAILURE, host="x", source="192.0.2.1")
LOGIN = Message("host-x", Kind.OTHER)


def shedder(budget: int = 5, dead: int = 2) -> Shedder:
    return Shedder(budget, window=60.0, dead_max=dead, exempt="central")


def test_past_the_budget_junk_is_shed_after_a_few_more_dead_letters() -> None:
    shed = shedder()
    outcomes = [shed.shed(JUNK, 100.0 + n / 10) for n in range(10)]
    # 5 spend the budget (the 5th starts the flood), 2 more go dead, the rest are shed.
    assert [o is None for o in outcomes] == [True] * 7 + [False] * 3
    assert outcomes[-1] == "shed: refused while host-x floods (undecodable event: junk)"
    [flood] = shed.started()
    assert (flood.speaker, flood.refused, flood.folded) == ("host-x", 5, 0)
    assert flood.first_reasons == ("undecodable event: junk",)
    assert shed.started() == []  # reported once


def test_a_flooding_speakers_logins_are_decided_and_failures_counted() -> None:
    shed = shedder(budget=3)
    for n in range(3):
        shed.folded("host-x", 100.0 + n)
    assert shed.flooding() == ["host-x"]
    assert shed.shed(LOGIN, 104.0) is None  # never drop a login
    assert shed.shed(FAILED, 104.0) == "shed: failed login counted while host-x floods"
    assert shed.shed(Message("host-y", Kind.FAILURE), 104.0) is None  # only the flooder


def test_the_central_user_is_never_shed() -> None:
    shed = shedder(budget=1)
    central = Message("central", Kind.REFUSED, reason="r")
    assert [shed.shed(central, 100.0) for _ in range(5)] == [None] * 5
    shed.folded("central", 100.0)
    assert shed.flooding() == [] and shed.started() == []


def test_one_line_per_speaker_per_interval_and_one_when_the_flood_ends() -> None:
    shed = shedder(budget=3, dead=0)
    for n in range(3):
        shed.shed(JUNK, 100.0 + n)
    shed.started()
    for n in range(50):
        shed.shed(JUNK, 103.0 + n / 100)
        shed.shed(FAILED, 103.0 + n / 100)
    assert shed.lines(110.0) == []  # a line went out when the flood started
    [line] = shed.lines(102.0 + LOG_EVERY_S)
    assert line.startswith("host-x floods: shed 50 refused, 50 failure since the last line")
    assert "(refused: 50x undecodable event: junk)" in line
    assert shed.lines(102.5 + LOG_EVERY_S) == []
    # Quiet for a window: one last line, and the speaker is forgotten.
    [ended] = shed.lines(200.0)
    assert ended.startswith("host-x no longer floods: shed 50 refused, 50 failure in")
    assert shed.flooding() == []
    assert shed.shed(FAILED, 201.0) is None


def test_the_budget_is_per_window() -> None:
    shed = shedder(budget=3)
    shed.shed(JUNK, 100.0)
    shed.shed(JUNK, 101.0)
    shed.lines(170.0)  # those two left the window
    shed.shed(JUNK, 171.0)
    assert shed.flooding() == []
    shed.shed(JUNK, 172.0)
    shed.shed(JUNK, 173.0)
    assert shed.flooding() == ["host-x"]


def test_a_flooding_speakers_decisions_are_counted_for_its_line() -> None:
    shed = shedder(budget=1)
    shed.folded("host-x", 100.0)
    for _ in range(7):
        shed.decided("host-x")
    shed.shed(FAILED, 101.0)
    [line] = shed.lines(100.0 + LOG_EVERY_S)
    assert "decided 7 of its other messages" in line
