"""What a host sends, as one tagged union: decode any body, check the type you got.

The tags (the first item of every msgpack array on the wire):

- 1: ``schemas.event.LoginEvent``, from hooks before the compact form;
- 2: ``schemas.compact.CompactEvent``, from the hook: every PAM event, expanded here into
  the ``LoginEvent`` it stands for;
- 3: ``schemas.records.Heartbeat``, from ``loginwatch-hook flush`` and ``goodbye``;
- 4: ``schemas.records.Logout``, from ``loginwatch-hook flush``: sessions ended, as wtmp
  or wtmpdb recorded them.

``decode`` returns a ``Message`` (an event, a heartbeat or a logout); ``decode_event``
only an event, refusing the others with a reason. The routing key's last word names the
type (``schemas.topology.message_type``), but it is the publisher's choice: a consumer
checks the type it got (``isinstance``) and refuses, with a reason, what it does not
handle. Docs: docs/architecture.md, "The wire".
"""

from __future__ import annotations

from typing import Final, Union

import msgspec

from schemas import topology
from schemas.compact import CompactEvent, expand
from schemas.errors import DecodeError
from schemas.event import MAX_BODY, LoginEvent
from schemas.records import Heartbeat, Logout

Message = Union[LoginEvent, Heartbeat, Logout]
Sent = Union[LoginEvent, CompactEvent, Heartbeat, Logout]

_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(Sent)


def encode(message: Sent) -> bytes:
    """The body of one message (a ``LoginEvent`` in the first form: ``compact`` it)."""
    return _encoder.encode(message)


def decode(data: bytes) -> Message:
    """Decode and validate one message of any type; a compact event comes back expanded.

    Raises:
        DecodeError: the body is no valid message: longer than ``MAX_BODY``, not
            msgpack, an unknown tag, a field out of its bound (or a code this side's
            tables lack), nested too deep for the decoder (``RecursionError``), or
            anything else msgspec raises. It keeps the raw bytes and the reason
            (``$.user: ...``) for the dead queue.
    """
    if len(data) > MAX_BODY:
        raise DecodeError(f"body of {len(data)} bytes is over the {MAX_BODY}-byte limit", data)
    try:
        found = _decoder.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        # The tag is the first item: a type this side does not know (or no tag at all).
        why = f"unknown message tag: {exc}" if str(exc).endswith("`$[0]`") else str(exc)
        raise DecodeError(why, data) from exc
    except RecursionError:
        raise DecodeError("nested too deeply to decode", data) from None
    except Exception as exc:
        raise DecodeError(f"cannot decode: {type(exc).__name__}: {exc}"[:200], data) from None
    return expand(found) if isinstance(found, CompactEvent) else found


def decode_event(data: bytes) -> LoginEvent:
    """``decode``, for a consumer that handles PAM events only.

    Raises:
        DecodeError: as ``decode``; or a heartbeat or logout (the reason names it).
    """
    found = decode(data)
    if not isinstance(found, LoginEvent):
        raise DecodeError(f"a {message_type(found)} message, not a login event", data)
    return found


def message_type(message: Message | CompactEvent) -> str:
    """The routing key's last word for ``message`` (``schemas.topology``)."""
    if isinstance(message, Heartbeat):
        return topology.HEARTBEAT_TYPE
    if isinstance(message, Logout):
        return topology.LOGOUT_TYPE
    return topology.EVENT_TYPE
