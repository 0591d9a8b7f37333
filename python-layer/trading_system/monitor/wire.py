"""Requests to the engines assembled from bytes the monitor already holds (the journal keeps
each bar message serialized): no decoding and encoding again of every bar on the hot path."""

from __future__ import annotations

from trading_system.proto import trading_pb2 as pb


def length_delimited(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2) with ``payload``."""
    size = len(payload)
    head = bytearray([(number << 3) | 2])
    while True:
        byte = size & 0x7F
        size >>= 7
        if size:
            head.append(byte | 0x80)
        else:
            head.append(byte)
            return bytes(head) + payload


def session_field(symbol: str, timeframe: str) -> bytes:
    """The encoded ``SessionMessage.session`` field of a session (kept per client stream)."""
    return length_delimited(
        1, pb.SessionName(symbol=symbol, timeframe=timeframe).SerializeToString()
    )


def session_message(session: bytes, message: bytes) -> bytes:
    """An ``ApplyRequest.messages`` entry: the session field and the serialized BarMessage."""
    return length_delimited(1, session + length_delimited(2, message))
