"""Requests as the monitor forwards them: decoded, checked, and encoded again — never the
client's bytes passed on (docs/MONITOR.md, "Only engine faults count").

Python's protobuf accepts more than the Rust engine's decoder: a known field sent with the
wrong wire type is kept as an unknown field and would be sent on as it came, so a request the
Python engine takes would make the Rust engine refuse it — and a refusal that looked like an
engine fault would move traffic away from a healthy engine. Such a request is refused here, as
both engines refuse it, and unknown fields (which both engines ignore) are dropped before the
request is encoded for an engine.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

M = TypeVar("M", bound=Message)


class Undecodable(Exception):
    """Bytes that are not a valid message of the request's type."""

    def __init__(self, cls: type[Message]) -> None:
        super().__init__(f"the request is not a valid {cls.DESCRIPTOR.full_name}")


def _misread(m: Message) -> bool:
    """Whether ``m`` or a message inside it holds an unknown field whose number is one of its
    own fields (a known field sent with the wrong wire type)."""
    numbers = m.DESCRIPTOR.fields_by_number
    if any(f.field_number in numbers for f in UnknownFieldSet(m)):
        return True
    for fd, value in m.ListFields():
        if fd.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if fd.is_repeated:
            entry = fd.message_type  # set for every message field (None only for scalars)
            if entry is not None and entry.GetOptions().map_entry:
                continue
            if any(_misread(v) for v in value):
                return True
        elif _misread(value):
            return True
    return False


def parse(cls: type[M], data: bytes) -> M:
    """The request decoded, refused (Undecodable) when it is not valid, its unknown fields
    dropped."""
    try:
        m = cls.FromString(data)
    except DecodeError:
        raise Undecodable(cls) from None
    if _misread(m):
        raise Undecodable(cls)
    m.DiscardUnknownFields()
    return m
