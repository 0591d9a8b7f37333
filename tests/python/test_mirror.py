"""How the monitor compares the two engines' answers to one mirrored message (an engine whose
answer differs leaves the mirror and is rebuilt): everything but ``engine`` and ``epoch``."""

from __future__ import annotations

import math

from trading_system.monitor.mirror import _same
from trading_system.proto import trading_pb2 as pb


def answer(engine: str, epoch: int, seq: int = 7, dif: float = math.nan) -> pb.StreamResponse:
    u = pb.Update(index=6, bars=7, macd=pb.MacdPoint(dif=dif, dea=0.5, histogram=1.0))
    return pb.StreamResponse(seq=seq, engine=engine, epoch=epoch, update=u)


def test_same_but_for_engine_and_epoch() -> None:
    # NaN (an absent MACD value) on both sides is the same answer.
    assert _same(answer("rust", 3), answer("python", 0))
    assert not _same(answer("rust", 3), answer("python", 3, seq=8))
    assert not _same(answer("rust", 3), answer("python", 3, dif=1.0))
    opened = pb.StreamResponse(seq=0, engine="rust", opened=pb.Opened(session="X/1m"))
    assert not _same(answer("rust", 3, seq=0), opened)
    error = pb.StreamResponse(seq=7, engine="python", error=pb.StreamError(code=9))
    assert _same(error, pb.StreamResponse(seq=7, engine="rust", error=pb.StreamError(code=9)))
    assert not _same(error, pb.StreamResponse(seq=7, engine="rust", error=pb.StreamError(code=3)))
