"""The digest lists the silences and acks in force during its window (the config's and the
store's, with who made them), the "was this you?" questions asked in it (answered or not,
flagged), and each login's answer beside it; on both stores."""

from __future__ import annotations

from datetime import timedelta

from consumer.digest.sender import WindowSender
from consumer.digest.windows import window_at
from consumer.questions.decide import NO, YES, Given
from consumer.questions.table import Question, QuestionTable
from consumer.silences.rules import ACK, Rule
from consumer.silences.table import SilenceTable
from tests.support.digest_support import OPS, day, login, store_events


def test_a_digest_lists_silences_acks_and_questions_of_its_window(digests: WindowSender) -> None:
    alice = login(day(0, 9), "web-1", "alice", "192.0.2.10")
    carol = login(day(0, 10), "web-2", "carol", "192.0.2.11")
    store_events(digests, [alice, carol, login(day(0, 11), "web-3", "dave", "192.0.2.12")],
                 day(0, 12))  # fmt: skip
    db = digests.store.db
    silences = SilenceTable(db)
    silences.add(Rule(id="", hosts=("db-*",), starts=day(0, 8), ends=day(0, 10),
                      comment="CHG-42", created_by="oscar", created_at=day(0, 8)))  # fmt: skip
    silences.add(Rule(id="", kind=ACK, hosts=("web-1",), users=("alice",), starts=day(0, 9),
                      ends=day(1, 9), created_by="petra", created_at=day(0, 9)))  # fmt: skip
    silences.add(Rule(id="", hosts=("old-*",), starts=day(-3), ends=day(-2),
                      created_by="nobody-now", created_at=day(-3)))  # fmt: skip
    questions = QuestionTable(db)
    for event, answers in ((alice, [(NO, 0)]), (carol, [(YES, 0), (NO, 4)])):
        q = questions.ask(Question(id=event.id_hex, host=event.host, user=event.user,
                                   client_ip=event.client_ip, client_port=event.client_port,
                                   fingerprint=event.fingerprint, login_at=event.time,
                                   asked=f"{event.user}@corp.test", asked_at=event.time,
                                   expires_at=event.time + timedelta(days=1)))  # fmt: skip
        for n, (said, after) in enumerate(answers):
            questions.answer(q.id, f"t{n}", Given(said, event.time + timedelta(seconds=after)),
                             client="192.0.2.99", agent="test")  # fmt: skip
    window = window_at(digests.schedule, day(0, 1))
    summary = digests.summaries(window, dead=0)[OPS]
    assert summary.silences.total == 2  # the old one ended before the window
    text = digests.renderer.render(digests.view(summary), day(1)).get_body(("plain",))
    assert text is not None
    body = str(text.get_content())
    silenced = body.split("Silences and acks in force during this window", 1)[1]
    assert "hosts=db-* for everyone" in silenced and "by oscar: CHG-42" in silenced
    assert "ack " in silenced and "by petra" in silenced and "nobody-now" not in silenced
    asked = body.split('"Was this you?" questions asked in this window', 1)[1]
    assert "alice on web-1 from 192.0.2.10, asked alice@corp.test: said NO" in asked
    assert "carol on web-2" in asked and "likely a mail scanner" in asked
    assert "dave" not in asked  # nobody asked dave
