"""The login bench's reading of a capture: each connection to the login that made it."""

from __future__ import annotations

from tests.bench.bench_login import attributed, stalled


def test_a_connection_belongs_to_the_login_whose_span_holds_it_even_back_to_back() -> None:
    spans = [("none", 10.0, 10.2), ("true", 10.2, 10.45), ("native", 10.45, 10.7)]
    connections = [(10.004, True), (10.205, False), (10.46, True)]
    assert attributed(spans, connections) == {"none": [True], "true": [False], "native": [True]}


def test_a_login_tcpdump_missed_counts_for_neither_side() -> None:
    spans = [("none", 10.0, 10.2), ("true", 10.2, 10.45)]
    assert attributed(spans, [(10.3, True)]) == {"true": [True]}


def test_a_stall_is_a_small_packet_held_for_the_delayed_ack() -> None:
    # (time, from sshd, length, SYN): sshd's 272 bytes, the client's bare ACK 41 ms later,
    # sshd's next data right behind it: Nagle held it.
    held = [(0.0, True, 272, False), (0.041, False, 0, False), (0.0412, True, 200, False)]
    prompt = [(0.0, True, 272, False), (0.001, False, 0, False), (0.0012, True, 200, False)]
    assert stalled(held) and not stalled(prompt)
