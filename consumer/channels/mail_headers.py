"""Mail headers event text cannot change: build every mail here, check what goes on the wire.

Two layers, because CPython's ``email`` before the CVE-2024-6923 fix (3.11.7, which the
project accepts, among them) decodes an RFC 2047 encoded word in a header value into
whatever it encodes, CR/LF included, and writes that raw when it folds the header:

- ``inert``: header-bound text becomes one printable line (``display.visible``), and every
  ``=?`` becomes ``=？`` (a fullwidth question mark). ``=?`` is the only way ``email`` (and
  a mail client) recognises an encoded word, whatever its charset, ``*lang`` tag, ``b``/``q``
  encoding or case, so an encoded word in event text is shown, never decoded. It runs on
  the whole value, so a word split across fields or joined with template text is caught too.
- ``wire``: the bytes SMTP sends, serialized as smtplib does, with the header block read back:
  it must hold exactly the message's own headers, in order, each the same after decoding and
  free of CR/LF, or the mail is a ``PermanentSendError`` (the reason goes to the log and the
  dead queue). ``compose`` (every builder) and the SMTP sender both run it, so a mail that
  fails it never reaches the wire, on a Python with the fix or without it.

``mail`` is the envelope every loginwatch mail has (alerts, bursts, digests): From, To, one
inert Subject line, Date, a stable Message-ID, Auto-Submitted, the caller's ``X-Loginwatch-*``
marks, and a text + HTML body.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.errors import MessageError
from email.generator import BytesGenerator
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, getaddresses
from typing import Final

from consumer.core.display import quoted, visible
from schemas.errors import PermanentSendError

ENCODED_WORD: Final = "=?"
SHOWN_AS: Final = "=\uff1f"  # "=？": reads as what it was, starts no encoded word
_FOLD: Final = (b" ", b"\t")
MIME_HEADERS: Final = ("MIME-Version", "Content-Type")  # what set_content adds
# smtplib.send_message drops these before sending; we send the checked bytes as they are.
_NEVER_SENT: Final = frozenset({"bcc", "resent-bcc"})
SUBJECT_MAX: Final = 200


def inert(text: str) -> str:
    """``text`` as one printable header line that ``email`` passes through as it is.

    Whitespace runs (newlines, U+2028, U+0085, VT, FF… included) become one space, what does
    not print is shown (``visible``), and no ``=?`` is left to start an encoded word.
    """
    return visible(" ".join(text.split())).replace(ENCODED_WORD, SHOWN_AS)


def header_text(text: str, limit: int) -> str:
    """``inert(text)`` cut to ``limit`` characters (a cut cannot make a new ``=?``)."""
    line = inert(text)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def compose(headers: Iterable[tuple[str, str | Address]], text: str, html: str) -> EmailMessage:
    """A text + HTML mail with ``headers`` (text values made ``inert``), checked by ``wire``.

    Raises:
        PermanentSendError: a header cannot be set, or the serialized mail does not hold
            exactly these headers (``wire``).
    """
    msg = EmailMessage()
    names = []
    for name, value in headers:
        names.append(name)
        try:
            msg[name] = inert(value) if isinstance(value, str) else value
        except (ValueError, MessageError) as exc:
            raise PermanentSendError(f"mail header {name}: {quoted(str(exc), 200)}") from None
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    if msg.keys() != [*names, *MIME_HEADERS]:
        raise PermanentSendError(f"mail headers refused: {', '.join(msg.keys())} set, not these")
    wire(msg)
    return msg


def sender_address(from_: str) -> Address:
    """The From of every loginwatch mail: ``loginwatch <[smtp] from>``."""
    return Address("loginwatch", addr_spec=from_)


def message_id(kind: str, ident: str, recipient: str, domain: str) -> str:
    """A stable ``Message-ID``: the same mail (kind, event id or window, recipient) always
    gets the same one, so a duplicate is recognisable. ``ident`` stays readable (event id)."""
    digest = hashlib.sha256(recipient.lower().encode()).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9.-]", "-", f"{ident}.{kind}")
    return f"<{safe}.{digest}@{domain}>"


def mail(
    sender: Address,
    recipient: str,
    subject: str,
    *,
    about: tuple[str, str],
    marks: Iterable[tuple[str, str]],
    text: str,
    html: str,
    now: datetime | None = None,
) -> EmailMessage:
    """A loginwatch mail to ``recipient``, built by ``compose``.

    ``about`` is the mail's kind and what it is about (``("alert", event id)``, ``("digest",
    window key)``): the Message-ID is derived from it and the recipient, so a re-sent mail
    is recognisably the same. ``marks`` (the ``X-Loginwatch-*`` headers) follow the
    envelope. The subject is cut to ``SUBJECT_MAX`` characters.

    Raises:
        PermanentSendError: as ``compose``.
    """
    kind, ident = about
    headers: list[tuple[str, str | Address]] = [
        ("From", sender),
        ("To", Address(addr_spec=recipient)),
        ("Subject", header_text(subject, SUBJECT_MAX)),
        ("Date", format_datetime(now or datetime.now(UTC))),
        ("Message-ID", message_id(kind, ident, recipient, sender.domain)),
        ("Auto-Submitted", "auto-generated"),  # RFC 3834: no vacation replies to us
        *marks,
    ]
    return compose(headers, text, html)


def wire(msg: EmailMessage) -> bytes:
    """The bytes SMTP sends for ``msg`` (CRLF lines, as ``smtplib.send_message`` makes them).

    Raises:
        PermanentSendError: a header value holds CR or LF, or the serialized header block is
            not exactly ``msg``'s headers (one added, ended early, or reading back otherwise).
    """
    policy = msg.policy
    if isinstance(policy, EmailPolicy) and international(msg):
        policy = policy.clone(utf8=True)  # SMTPUTF8: smtplib writes such headers raw
    out = io.BytesIO()
    try:
        BytesGenerator(out, policy=policy).flatten(msg, linesep="\r\n")
    except (ValueError, MessageError) as exc:  # HeaderWriteError on Pythons with the fix
        _refuse_breaks(_items(msg))  # the clearer reason, where it applies
        raise PermanentSendError(f"mail headers refused: {quoted(str(exc), 200)}") from None
    # After flattening, which sets the multipart boundary; each items() parses every header.
    items = _items(msg)
    _refuse_breaks(items)
    if any(name.lower() in _NEVER_SENT for name, _ in items):
        raise PermanentSendError("mail headers refused: a Bcc header would go out with the mail")
    data = out.getvalue()
    _check_block(msg, items, data)
    return data


def international(msg: EmailMessage) -> bool:
    """Whether an envelope address needs SMTPUTF8 (smtplib's own test)."""
    pairs = getaddresses([str(v) for v in (*msg.get_all("From", []), *msg.get_all("To", []))])
    return not all(addr.isascii() for _, addr in pairs)


def _check_block(msg: EmailMessage, items: list[tuple[str, str]], data: bytes) -> None:
    head, end, _ = data.partition(b"\r\n\r\n")
    if not end:
        raise PermanentSendError("mail headers refused: the header block does not end")
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line.startswith(_FOLD) and fields:
            fields[-1] += line  # RFC 5322 unfolding: the CRLF goes, the blank stays
        else:
            fields.append(line)
    for field in fields:
        if b"\r" in field or b"\n" in field or b":" not in field:
            raise PermanentSendError(f"mail headers refused: a bare CR/LF in {_shown(field)}")
    names = [field.partition(b":")[0].decode("ascii", "replace") for field in fields]
    ours = [name for name, _ in items]
    if names != ours:
        raise PermanentSendError(
            f"mail headers refused: {', '.join(names)} on the wire, not {', '.join(ours)}"
        )
    # Read back as a client would. Blanks may differ: email drops the one between two of
    # its own encoded words when it folds (RFC 2047 ignores it); any other text may not.
    for (name, value), field in zip(items, fields, strict=True):
        read = field.partition(b":")[2].decode("utf-8", "surrogateescape").strip()
        if ENCODED_WORD in read:  # only email's own words can be left: decode them
            read = str(msg.policy.header_factory(name, read))  # type: ignore[attr-defined]
        if _breaks(read) or _squeezed(read) != _squeezed(value):
            raise PermanentSendError(
                f"mail header {name} reads back as {_shown(read)}, not {_shown(value)}"
            )


def _items(msg: EmailMessage) -> list[tuple[str, str]]:
    return [(name, str(value)) for name, value in msg.items()]


def _refuse_breaks(items: list[tuple[str, str]]) -> None:
    for name, value in items:
        if _breaks(value):
            raise PermanentSendError(f"mail header {name} holds a line break: {_shown(value)}")


def _squeezed(value: str) -> str:
    return "".join(value.split())


def _breaks(value: str) -> bool:
    return "\r" in value or "\n" in value


def _shown(value: object) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return quoted(text, 120)
