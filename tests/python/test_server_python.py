"""The Python gRPC server (``trading-system serve python``, docs/GRPC.md) as a real process on a
loopback port, spoken to with the generated stubs: Analyze equals the Python engine's document,
every validation rule, exactly-once streams, sizes, the bearer token, TLS and mutual TLS,
health, configuration updates, graceful shutdown and port conflicts.

Answers are turned back into documents with ``trading_system.convert`` (the client's and the
monitor's reading) and compared bit for bit with the engine's documents: a field the server
wrote wrong, or the reading got wrong, fails here. No assertion depends on how long anything
takes.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc
import numpy as np
import pytest
from golden import as_json, bars_of, cases, exact_diff
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status
from servers import ROOT, Server, start
from typed import Health, as_is, raw_unary

from trading_system import __version__, convert
from trading_system.config import engine_config
from trading_system.data import Bars, load_csv
from trading_system.engine import Session, analyze
from trading_system.engine.document import AnalysisDoc
from trading_system.errors import InvalidBars, StateError, summarize
from trading_system.proto import trading_pb2 as pb
from trading_system.proto import trading_pb2_grpc as rpc
from trading_system.server.service import Sized, TradingService

DATA = ROOT / "tests" / "data"
SAMPLES = sorted(DATA.glob("*.csv"))
BTC = DATA / "BTCUSD-BITSTAMP_30m.csv"
MAX_BYTES = 200_000
WINDOW = 8
SETS = [f"server.max_message_bytes={MAX_BYTES}", f"server.replay_window={WINDOW}"]
TIMEOUT = 60.0
"""A bound on every call, so a broken server fails the test instead of hanging it."""
BIG = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
UNDEFINED_OP = cast(pb.Op, 7)
"""An ``op`` the contract does not define (the generated type admits only the defined ones)."""


pytestmark = pytest.mark.usefixtures("no_environment_overrides")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = start("python", SETS)
    try:
        yield s
    finally:
        assert s.stop() == 0


@pytest.fixture(scope="module")
def stub(server: Server) -> rpc.TradingStub:
    return rpc.TradingStub(server.channel(options=BIG))


# ---- Answers back into documents --------------------------------------------------------------


def config_doc(c: pb.EngineConfig) -> dict[str, dict[str, Any]]:
    """The configuration in an answer: every field of every section set."""
    for section in convert.SECTIONS:
        sub = getattr(c, section)
        assert all(sub.HasField(f.name) for f in sub.DESCRIPTOR.fields), "every field is set"
    return convert.config_document(c)


def analysis_doc(a: pb.Analysis) -> AnalysisDoc:
    config_doc(a.config)
    return convert.analysis_document(a)


update_doc = convert.update_document


# ---- Requests -----------------------------------------------------------------------------------


columns = convert.bars_message


def overrides(config: dict[str, Any]) -> pb.EngineConfig:
    return json_format.ParseDict(config, pb.EngineConfig())


def analyze_request(
    bars: Bars, config: dict[str, Any] | None = None, with_macd: bool = False
) -> pb.AnalyzeRequest:
    return pb.AnalyzeRequest(
        bars=columns(bars), config=overrides(config or {}), with_macd=with_macd
    )


def open_msg(symbol: str, timeframe: str = "30m", resume: bool = False, **kw: Any) -> Any:
    config = kw.pop("config", {})
    return pb.StreamRequest(
        open=pb.OpenSession(
            symbol=symbol, timeframe=timeframe, resume=resume, config=overrides(config), **kw
        )
    )


Row = tuple[int, float, float, float, float, float]


def bar_msg(seq: int, row: Row, replace: bool = False) -> pb.StreamRequest:
    t, o, h, lo, c, v = row
    return pb.StreamRequest(
        bar=pb.BarMessage(
            seq=seq,
            op=pb.REPLACE_LAST if replace else pb.APPEND,
            bar=pb.Bar(time=t, open=o, high=h, low=lo, close=c, volume=v),
        )
    )


@dataclass
class Failed:
    """A call's error: its code, message and BadRequest violations ``(field, description)``."""

    code: grpc.StatusCode
    message: str
    violations: list[tuple[str, str]]


def failure(fn: Callable[[], Any]) -> Failed:
    with pytest.raises(grpc.RpcError) as info:
        fn()
    e: Any = info.value
    status = rpc_status.from_call(e)
    violations = []
    for d in status.details if status else []:
        bad = error_details_pb2.BadRequest()
        assert d.Unpack(bad)
        violations += [(v.field, v.description) for v in bad.field_violations]
    if status is not None:
        assert (status.code, status.message) == (e.code().value[0], e.details())
    return Failed(e.code(), e.details(), violations)


class Conversation:
    """A stream spoken one message at a time: each :meth:`send` waits for its answer."""

    def __init__(self, stub: rpc.TradingStub, metadata: Any = None) -> None:
        self._requests: queue.Queue[Any] = queue.Queue()
        self._answers = stub.Stream(
            iter(self._requests.get, None), metadata=metadata, timeout=TIMEOUT
        )

    def send(self, msg: Any) -> pb.StreamResponse:
        self._requests.put(msg)
        return next(self._answers)

    def close(self) -> list[pb.StreamResponse]:
        self._requests.put(None)
        return list(self._answers)

    def __enter__(self) -> Conversation:
        return self

    def __exit__(self, *exc: object) -> None:
        self._requests.put(None)
        self._answers.cancel()


def rows_of(path: Path) -> list[Row]:
    return list(load_csv(path).rows())


def bars_from(rows: list[Row]) -> Bars:
    return Bars(*(np.array(c) for c in zip(*rows, strict=True)))  # type: ignore[arg-type]


# ---- Analyze ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize(
    "config",
    [{}, {"pen": {"definition": "traditional"}, "macd": {"seed": "sma", "fast_period": 5}}],
    ids=["defaults", "overrides"],
)
def test_analyze_equals_the_engine(
    stub: rpc.TradingStub, path: Path, config: dict[str, Any]
) -> None:
    bars = load_csv(path)
    # One sample has bars whose high/low do not cover the body: repaired, and reported.
    config = {**config, "validation": {"repair": True}}
    answer = stub.Analyze(analyze_request(bars, config, with_macd=True), timeout=TIMEOUT)
    assert answer.engine == "python"
    want = as_json(analyze(bars, engine_config(config), with_macd=True))
    got = analysis_doc(answer.analysis)
    assert exact_diff(want, got) is None
    macd = got.get("macd")
    assert macd is not None
    assert any(x is None for x in macd["dif"]) == ("macd" in config), "sma: absent values"
    no_macd = stub.Analyze(analyze_request(bars, config), timeout=TIMEOUT)
    assert not no_macd.analysis.HasField("macd")


def test_analyze_repairs_and_times(stub: rpc.TradingStub) -> None:
    bars = load_csv(BTC)
    high = bars.high.copy()
    high[5] = bars.low[5] - 1  # high below the body: repaired with validation.repair
    broken = Bars(bars.time, bars.open, high, bars.low, bars.close, bars.volume)
    cfg = {"validation": {"repair": True}}
    answer = stub.Analyze(analyze_request(broken, cfg), timeout=TIMEOUT).analysis
    assert [r.index for r in answer.repairs] == [5]
    assert exact_diff(as_json(analyze(broken, engine_config(cfg))), analysis_doc(answer)) is None
    # Points carry the bars' own epoch milliseconds.
    pen = answer.pens[0]
    assert pen.start.time == bars.time[pen.start.index]


ERROR_CASES = [(n, c) for n, c in cases() if "expected_error" in c]


@pytest.mark.parametrize(("name", "case"), ERROR_CASES, ids=[n for n, _ in ERROR_CASES])
def test_every_bad_bar_rule(stub: rpc.TradingStub, name: str, case: dict[str, Any]) -> None:
    bars = bars_of(case)
    f = failure(lambda: stub.Analyze(analyze_request(bars, case.get("config")), timeout=TIMEOUT))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT
    want = [
        (
            "bars" if v["index"] is None else f"bars[{v['index']}].{v['field']}",
            f"{v['rule']}: {v['message']}",
        )
        for v in case["expected_error"]
    ]
    assert f.violations == want
    with pytest.raises(InvalidBars) as e:
        analyze(bars, engine_config(case.get("config")))
    assert f.message == f"invalid bars: {summarize(e.value.violations)}" == str(e.value)


def test_empty_series_and_column_lengths(stub: rpc.TradingStub) -> None:
    f = failure(lambda: stub.Analyze(pb.AnalyzeRequest(), timeout=TIMEOUT))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT
    assert f.violations == [
        ("bars", "non_empty: the series is empty: at least one bar is required")
    ]
    r = analyze_request(load_csv(BTC))
    del r.bars.close[-1]
    del r.bars.open[-2:]
    f = failure(lambda: stub.Analyze(r, timeout=TIMEOUT))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT
    assert f.violations == [
        ("bars.open", "has 1966 values, bars.time has 1968"),
        ("bars.close", "has 1967 values, bars.time has 1968"),
    ]
    assert f.message == (
        "invalid bars: columns of different lengths: bars.open has 1966 values, bars.time "
        "has 1968; bars.close has 1967 values, bars.time has 1968"
    )


@pytest.mark.parametrize(
    ("config", "field", "description"),
    [
        ({"macd": {"fast_period": 40}}, "macd.fast_period", "must be < macd.slow_period (26), "),
        ({"macd": {"signal_period": 0}}, "macd.signal_period", "must be >= 1, got 0"),
        ({"macd": {"seed": "median"}}, "macd.seed", "'first_close' or 'sma', got \"median\""),
        ({"pen": {"definition": "old"}}, "pen.definition", "'traditional', got \"old\""),
        ({"signal": {"strength": "Area"}}, "signal.strength", "'amplitude', got \"Area\""),
        ({"macd": {"histogram_scale": "NaN"}}, "macd.histogram_scale", "must be a finite"),
        ({"signal": {"divergence_rate": 0}}, "signal.divergence_rate", "must be a finite"),
    ],
)
def test_bad_configuration_overrides(
    stub: rpc.TradingStub, config: dict[str, Any], field: str, description: str
) -> None:
    bars = load_csv(BTC)
    f = failure(lambda: stub.Analyze(analyze_request(bars, config), timeout=TIMEOUT))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT
    [(got_field, got_description)] = f.violations
    assert got_field == f"config.{field}"
    assert description in got_description  # free text: what the range or the choices are
    assert f.message == f"invalid configuration: {field}: {got_description}"


def test_overrides_apply_key_by_key(stub: rpc.TradingStub) -> None:
    # Both periods move together: checked once at the end, not key by key.
    bars = load_csv(BTC)
    cfg = {"macd": {"fast_period": 30, "slow_period": 40}}
    answer = stub.Analyze(analyze_request(bars, cfg), timeout=TIMEOUT).analysis
    assert (answer.config.macd.fast_period, answer.config.macd.slow_period) == (30, 40)
    assert answer.config.macd.signal_period == 9, "fields not set keep the server's values"


def test_oversize_requests(server: Server, stub: rpc.TradingStub) -> None:
    n = 5000  # about 220 kB as columns: over the limit, under twice it
    t = list(range(0, n * 60_000, 60_000))
    p = [100.0 + (i % 7) / 8 for i in range(n)]
    r = pb.AnalyzeRequest(bars=pb.Bars(time=t, open=p, high=p, low=p, close=p, volume=p))
    size = r.ByteSize()
    assert MAX_BYTES < size <= 2 * MAX_BYTES
    f = failure(lambda: stub.Analyze(r, timeout=TIMEOUT))
    assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f.message == f"request of {size} bytes exceeds server.max_message_bytes ({MAX_BYTES})"
    assert f.violations == []
    # Beyond twice the limit the transport refuses it by itself.
    huge = pb.AnalyzeRequest(
        bars=pb.Bars(time=t * 3, open=p * 3, high=p * 3, low=p * 3, close=p * 3, volume=p * 3)
    )
    assert huge.ByteSize() > 2 * MAX_BYTES
    assert failure(lambda: stub.Analyze(huge, timeout=TIMEOUT)).code == (
        grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    # A stream's open over the limit ends the stream; a bar message over it is refused in-band
    # (unknown fields make a bar message as large as one likes).
    padding = b"\x7a" + _varint(MAX_BYTES) + b"x" * MAX_BYTES  # field 15, length-delimited
    raw = server.channel().stream_stream(
        "/trading.v1.Trading/Stream",
        request_serializer=as_is,
        response_deserializer=pb.StreamResponse.FromString,
    )
    big_open = open_msg("BIG").SerializeToString() + padding
    f = failure(lambda: list(raw(iter([big_open]), timeout=TIMEOUT)))
    assert f.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    row = rows_of(BTC)[0]
    messages = [open_msg("BIG").SerializeToString(), bar_msg(1, row).SerializeToString() + padding]
    answers = list(raw(iter([*messages, bar_msg(1, row).SerializeToString()]), timeout=TIMEOUT))
    assert (
        answers[1].seq == 1 and answers[1].error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    )
    assert answers[1].error.message.endswith(f"exceeds server.max_message_bytes ({MAX_BYTES})")
    assert answers[2].WhichOneof("kind") == "update", "the number was not consumed"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


# ---- Streams ------------------------------------------------------------------------------------


def test_stream_appends_and_replacements_equal_batch(stub: rpc.TradingStub) -> None:
    rows = rows_of(BTC)[:400]
    cfg = {"pen": {"definition": "traditional"}}
    engine = Session(engine_config(cfg), with_macd=True)
    kept: list[Row] = []
    with Conversation(stub) as c:
        opened = c.send(open_msg("BTCUSD", config=cfg, with_macd=True))
        assert opened.seq == 0 and opened.engine == "python"
        assert (opened.opened.session, opened.opened.last_seq) == ("BTCUSD/30m", 0)
        assert not opened.opened.resumed and opened.opened.bars == 0
        assert config_doc(opened.opened.config) == engine_config(cfg).to_dict()
        seq = 0
        for i, row in enumerate(rows):
            t, o, h, lo, c_, v = row
            steps: list[tuple[Row, bool]] = [(row, False)]
            if i % 3 == 0:  # a provisional bar, then the final one replaces it
                steps = [((t, o, o, o, o, 0.0), False), (row, True)]
            for bar, replace in steps:
                seq += 1
                answer = c.send(bar_msg(seq, bar, replace))
                assert (answer.seq, answer.WhichOneof("kind")) == (seq, "update")
                want = (engine.replace_last if replace else engine.append)(*bar)
                assert exact_diff(as_json(want), update_doc(answer.update)) is None
            kept.append(row)
    snap = stub.GetSnapshot(pb.SnapshotRequest(symbol="BTCUSD", timeframe="30m"), timeout=TIMEOUT)
    assert (snap.session, snap.last_seq, snap.engine) == ("BTCUSD/30m", seq, "python")
    batch = stub.Analyze(analyze_request(bars_from(kept), cfg, with_macd=True), timeout=TIMEOUT)
    assert snap.analysis == batch.analysis
    assert exact_diff(as_json(engine.document()), analysis_doc(snap.analysis)) is None


def test_stream_exactly_once(stub: rpc.TradingStub) -> None:
    rows = rows_of(BTC)
    t, o, h, lo, cl, _ = rows[4]
    rows[4] = (t, o, h, lo, cl, 0.0)  # a zero volume, to resend as -0.0
    with Conversation(stub) as c:
        c.send(open_msg("ONCE", timeframe="1h"))
        first = [c.send(bar_msg(i + 1, rows[i])) for i in range(5)]
        # A duplicate: the cached answer, nothing applied twice.
        again = c.send(bar_msg(3, rows[2]))
        assert again.SerializeToString() == first[2].SerializeToString()
        # Another payload under an applied number, compared bit for bit (-0.0 is not 0.0).
        for other in [
            bar_msg(5, (t, o, h + 1, lo, cl, 0.0)),
            bar_msg(5, rows[4], replace=True),
            bar_msg(5, (t, o, h, lo, cl, -0.0)),
        ]:
            e = c.send(other)
            assert (e.seq, e.error.code) == (5, grpc.StatusCode.ABORTED.value[0])
            assert e.error.message == "sequence 5 was applied with a different bar"
        # A gap and zero: FAILED_PRECONDITION with the number expected.
        for seq in (9, 0):
            e = c.send(bar_msg(seq, rows[5]))
            assert e.seq == seq and e.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
            assert (e.error.message, e.error.expected_seq) == (f"expected sequence 6, got {seq}", 6)
        # A bad bar is refused in-band and does not consume its number.
        t6, o6, h6, lo6, c6, v6 = rows[5]
        e = c.send(bar_msg(6, (t6, math.nan, h6, lo6, c6, v6)))
        assert e.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        [fv] = e.error.field_violations
        assert (fv.field, fv.reason, fv.index) == ("bars[5].open", "finite", 5)
        assert fv.description == "finite: bar 5: open is NaN, not a finite number"
        assert e.error.message == "invalid bars: bar 5: open is NaN, not a finite number"
        e = c.send(bar_msg(6, (rows[4][0], o6, h6, lo6, c6, v6)))
        assert e.error.field_violations[0].reason == "time_duplicate"
        # No op, no bar.
        e = c.send(pb.StreamRequest(bar=pb.BarMessage(seq=6, bar=pb.Bar(time=t6))))
        assert e.error.message == "bar message 6: op must be APPEND or REPLACE_LAST, got 0"
        e = c.send(pb.StreamRequest(bar=pb.BarMessage(seq=6, op=pb.APPEND)))
        assert e.error.message == "bar message 6 carries no bar"
        assert e.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert c.send(bar_msg(6, rows[5])).WhichOneof("kind") == "update"
        # Past the replay window: FAILED_PRECONDITION, the next number expected.
        for i in range(6, 6 + WINDOW):
            c.send(bar_msg(i + 1, rows[i]))
        last = 6 + WINDOW
        old = c.send(bar_msg(last - WINDOW, rows[last - WINDOW - 1]))
        assert old.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert old.error.expected_seq == last + 1
        kept = c.send(bar_msg(last - WINDOW + 1, rows[last - WINDOW]))
        assert kept.WhichOneof("kind") == "update", "the last WINDOW answers are kept"
    snap = stub.GetSnapshot(pb.SnapshotRequest(symbol="ONCE", timeframe="1h"), timeout=TIMEOUT)
    assert (snap.last_seq, snap.analysis.bars) == (last, last), "each bar applied once"


def test_replace_on_an_empty_session(stub: rpc.TradingStub) -> None:
    row = rows_of(BTC)[0]
    with Conversation(stub) as c:
        c.send(open_msg("EMPTY"))
        e = c.send(bar_msg(1, row, replace=True))
        assert e.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert e.error.expected_seq == 1
        with pytest.raises(StateError) as want:
            Session(engine_config({})).replace_last(*row)
        assert e.error.message == str(want.value)
        assert c.send(bar_msg(1, row)).WhichOneof("kind") == "update"


def test_resume_after_reconnect(stub: rpc.TradingStub) -> None:
    rows = rows_of(BTC)
    with Conversation(stub) as c:
        c.send(open_msg("ETHUSD", config={"macd": {"fast_period": 5}}))
        first = [c.send(bar_msg(i + 1, r)) for i, r in enumerate(rows[:30])]
    # The connection is gone; the session is not. The client resends from what it saw last.
    with Conversation(stub) as c:
        opened = c.send(open_msg("ETHUSD", resume=True, config={"macd": {"fast_period": 7}}))
        o = opened.opened
        assert (o.session, o.last_seq, o.bars, o.resumed) == ("ETHUSD/30m", 30, 30, True)
        assert o.config.macd.fast_period == 5, "a resumed session keeps its configuration"
        again = [c.send(bar_msg(i + 1, rows[i])) for i in range(25, 40)]
    assert [a.SerializeToString() for a in again[:5]] == [
        a.SerializeToString() for a in first[25:30]
    ]
    assert all(a.WhichOneof("kind") == "update" for a in again[5:])
    snap = stub.GetSnapshot(pb.SnapshotRequest(symbol="ETHUSD", timeframe="30m"), timeout=TIMEOUT)
    batch = stub.Analyze(
        analyze_request(bars_from(rows[:40]), {"macd": {"fast_period": 5}}), timeout=TIMEOUT
    )
    assert snap.last_seq == 40 and snap.analysis == batch.analysis
    # A new open (no resume) replaces the session.
    with Conversation(stub) as c:
        assert c.send(open_msg("ETHUSD")).opened.last_seq == 0


def test_a_replaced_session_ends_its_streams(stub: rpc.TradingStub) -> None:
    rows = rows_of(BTC)
    with Conversation(stub) as a, Conversation(stub) as b:
        a.send(open_msg("SWAP"))
        a.send(bar_msg(1, rows[0]))
        b.send(open_msg("SWAP"))
        f = failure(lambda: a.send(bar_msg(2, rows[1])))
        assert f.code == grpc.StatusCode.ABORTED
        assert f.message == "session SWAP/30m was replaced by a new open; open or resume it again"
        assert b.send(bar_msg(1, rows[0])).WhichOneof("kind") == "update"


def test_two_streams_on_one_session(stub: rpc.TradingStub) -> None:
    rows = rows_of(BTC)
    with Conversation(stub) as a, Conversation(stub) as b:
        a.send(open_msg("SHARED"))
        b.send(open_msg("SHARED", resume=True))
        one = a.send(bar_msg(1, rows[0]))
        assert b.send(bar_msg(1, rows[0])) == one, "the other stream's duplicate: same answer"
        assert b.send(bar_msg(2, rows[1])).WhichOneof("kind") == "update"
        assert a.send(bar_msg(2, rows[1])).WhichOneof("kind") == "update"


@pytest.mark.parametrize(
    ("messages", "message", "violations"),
    [
        (
            [bar_msg(1, (0, 1.0, 1.0, 1.0, 1.0, 0.0))],
            "the first message of a stream must be open",
            [],
        ),
        ([pb.StreamRequest()], "the first message of a stream must be open", []),
        ([open_msg("TWICE"), open_msg("TWICE")], "a stream opens its session once", []),
        ([open_msg("EMPTYMSG"), pb.StreamRequest()], "a stream message must carry open or bar", []),
        (
            [open_msg("bad symbol!")],
            'invalid session name: open.symbol: symbol "bad symbol!" must be 1 to 64 '
            "characters of A-Z a-z 0-9 . _ : / -",
            [
                (
                    "open.symbol",
                    'symbol "bad symbol!" must be 1 to 64 characters of A-Z a-z 0-9 . _ : / -',
                )
            ],
        ),
        (
            [open_msg("", timeframe="7x")],
            None,
            ["open.symbol", "open.timeframe"],
        ),
        (
            [open_msg("BTC", config={"macd": {"fast_period": 0}})],
            "invalid configuration: macd.fast_period: must be >= 1, got 0",
            [("config.macd.fast_period", "must be >= 1, got 0")],
        ),
    ],
    ids=["bar-first", "nothing-first", "open-twice", "empty", "symbol", "both", "config"],
)
def test_bad_opens(
    stub: rpc.TradingStub, messages: list[Any], message: str | None, violations: list[Any]
) -> None:
    f = failure(lambda: list(stub.Stream(iter(messages), timeout=TIMEOUT)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT
    if message is not None:
        assert f.message == message
    if violations and isinstance(violations[0], str):
        assert [field for field, _ in f.violations] == violations
    else:
        assert f.violations == violations


@pytest.mark.parametrize(
    ("symbol", "timeframe", "ok"),
    [
        ("BTC/USDT", "1m", True),
        ("000001.SH", "15m", True),
        ("X:Y_z-1", "4h", True),
        ("A" * 64, "1d", True),
        ("a", "9999w", True),
        ("a", "1M", True),
        ("a", "1s", True),
        ("A" * 65, "1m", False),
        ("BTC USDT", "1m", False),
        ("é", "1m", False),
        ("a", "0m", False),
        ("a", "10000m", False),
        ("a", "1y", False),
        ("a", "1.5h", False),
        ("a", "15", False),
        ("a", "1é", False),
        ("a", "", False),
    ],
)
def test_symbols_and_timeframes(
    stub: rpc.TradingStub, symbol: str, timeframe: str, ok: bool
) -> None:
    if ok:
        answers = list(stub.Stream(iter([open_msg(symbol, timeframe)]), timeout=TIMEOUT))
        assert answers[0].opened.session == f"{symbol}/{timeframe}"
        snap = stub.GetSnapshot(pb.SnapshotRequest(symbol=symbol, timeframe=timeframe))
        assert snap.session == f"{symbol}/{timeframe}" and snap.analysis.bars == 0
        return
    f = failure(lambda: list(stub.Stream(iter([open_msg(symbol, timeframe)]), timeout=TIMEOUT)))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v[0] for v in f.violations] in (["open.symbol"], ["open.timeframe"])
    request = pb.SnapshotRequest(symbol=symbol, timeframe=timeframe)
    f = failure(lambda: stub.GetSnapshot(request, timeout=TIMEOUT))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v[0] for v in f.violations] in (["symbol"], ["timeframe"])


def test_unknown_sessions(stub: rpc.TradingStub) -> None:
    f = failure(lambda: list(stub.Stream(iter([open_msg("NOPE", resume=True)]), timeout=TIMEOUT)))
    assert (f.code, f.message) == (grpc.StatusCode.NOT_FOUND, "session NOPE/30m not found")
    request = pb.SnapshotRequest(symbol="NOPE", timeframe="1d")
    f = failure(lambda: stub.GetSnapshot(request, timeout=TIMEOUT))
    assert (f.code, f.message) == (grpc.StatusCode.NOT_FOUND, "session NOPE/1d not found")


# ---- Info and configuration ---------------------------------------------------------------------


def test_info_and_update_config_versus_running_sessions() -> None:
    s = start("python", ["pen.definition=traditional"])
    try:
        stub = rpc.TradingStub(s.channel())
        info = stub.GetInfo(pb.InfoRequest(), timeout=TIMEOUT)
        assert (info.engine, info.version, info.protocol) == ("python", __version__, "trading.v1")
        assert info.sessions == 0 and info.config.pen.definition == "traditional"
        rows = rows_of(BTC)
        with Conversation(stub) as c:
            c.send(open_msg("CFG"))
            for i in range(50):
                c.send(bar_msg(i + 1, rows[i]))
            upd = pb.UpdateConfigRequest(
                config=overrides({"pen": {"definition": "new_3kline"}, "macd": {"seed": "sma"}})
            )
            changed = stub.UpdateConfig(upd, timeout=TIMEOUT)
            assert changed.engine == "python"
            assert (changed.config.pen.definition, changed.config.macd.seed) == (
                "new_3kline",
                "sma",
            )
            assert stub.GetConfig(pb.GetConfigRequest()).config == changed.config
            # Validated as a whole; a rejected update changes nothing.
            bad = pb.UpdateConfigRequest(config=overrides({"macd": {"slow_period": 2}}))
            f = failure(lambda: stub.UpdateConfig(bad, timeout=TIMEOUT))
            assert f.code == grpc.StatusCode.INVALID_ARGUMENT
            assert f.violations[0][0] == "config.macd.fast_period"
            assert stub.GetConfig(pb.GetConfigRequest()).config == changed.config
            # The running session keeps the configuration it was opened with.
            c.send(bar_msg(51, rows[50]))
            snap = stub.GetSnapshot(pb.SnapshotRequest(symbol="CFG", timeframe="30m"))
            assert snap.analysis.config.pen.definition == "traditional"
            want = analyze(
                bars_from(rows[:51]), engine_config({"pen": {"definition": "traditional"}})
            )
            assert exact_diff(as_json(want), analysis_doc(snap.analysis)) is None
        with Conversation(stub) as c:
            resumed = c.send(open_msg("CFG", resume=True)).opened
            assert resumed.config.pen.definition == "traditional"
        with Conversation(stub) as c:
            assert c.send(open_msg("NEW")).opened.config == changed.config, "new sessions: new"
        a = stub.Analyze(analyze_request(load_csv(BTC)), timeout=TIMEOUT).analysis
        assert a.config == changed.config
        info = stub.GetInfo(pb.InfoRequest(), timeout=TIMEOUT)
        assert info.sessions == 2 and info.config == changed.config
    finally:
        assert s.stop() == 0


# ---- Authentication and TLS ---------------------------------------------------------------------


def test_bearer_token() -> None:
    token = "s3cret-token"
    s = start("python", [f"server.auth_token={token}"])
    try:
        stub = rpc.TradingStub(s.channel())
        for metadata in [None, [("authorization", "Bearer nope")], [("authorization", token)]]:
            f = failure(lambda m=metadata: stub.GetInfo(pb.InfoRequest(), metadata=m))
            assert (f.code, f.message) == (
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or invalid bearer token",
            )
        f = failure(lambda: list(stub.Stream(iter([open_msg("AUTH")]), timeout=TIMEOUT)))
        assert f.code == grpc.StatusCode.UNAUTHENTICATED
        for scheme in ("Bearer", "bearer"):
            ok = stub.GetInfo(pb.InfoRequest(), metadata=[("authorization", f"{scheme} {token}")])
            assert ok.protocol == "trading.v1"
        good = [("authorization", f"Bearer {token}")]
        answers = list(stub.Stream(iter([open_msg("AUTH")]), metadata=good, timeout=TIMEOUT))
        assert answers[0].opened.session == "AUTH/30m"
        health = Health(s.channel())
        assert (
            health.Check(health_pb2.HealthCheckRequest()).status
            == health_pb2.HealthCheckResponse.SERVING
        )
    finally:
        assert s.stop() == 0


@dataclass
class Pki:
    """A CA and PEM files: the server's certificate and key, a client's, and a stranger's
    (a client certificate from another CA)."""

    ca: bytes
    files: dict[str, Path]
    client: tuple[bytes, bytes]
    stranger: tuple[bytes, bytes]


def _pki(tmp: Path) -> Pki:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def key_pem(key: Any) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def ca(cn: str) -> tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    def issue(issuer: tuple[Any, Any], cn: str, server: bool) -> tuple[bytes, bytes]:
        ca_key, ca_cert = issuer
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if server:
            san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)

    root = ca("test CA")
    cert, key = issue(root, "localhost", server=True)
    files = {"cert": tmp / "server.pem", "key": tmp / "server.key", "ca": tmp / "ca.pem"}
    ca_pem = root[1].public_bytes(serialization.Encoding.PEM)
    files["cert"].write_bytes(cert)
    files["key"].write_bytes(key)
    files["ca"].write_bytes(ca_pem)
    return Pki(
        ca_pem, files, issue(root, "client", server=False), issue(ca("other CA"), "x", False)
    )


def _secure_info(s: Server, pki: Pki, client: tuple[bytes, bytes] | None) -> Any:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki.ca,
        private_key=client[1] if client else None,
        certificate_chain=client[0] if client else None,
    )
    with grpc.secure_channel(s.address, creds) as channel:
        return rpc.TradingStub(channel).GetInfo(pb.InfoRequest(), timeout=TIMEOUT)


def test_tls(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    s = start(
        "python",
        [f"server.tls_cert_file={pki.files['cert']}", f"server.tls_key_file={pki.files['key']}"],
    )
    try:
        assert _secure_info(s, pki, None).protocol == "trading.v1"
        plain = rpc.TradingStub(s.channel())
        f = failure(lambda: plain.GetInfo(pb.InfoRequest(), timeout=TIMEOUT))
        assert f.code == grpc.StatusCode.UNAVAILABLE
    finally:
        assert s.stop() == 0


def test_mutual_tls(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    s = start(
        "python",
        [
            f"server.tls_cert_file={pki.files['cert']}",
            f"server.tls_key_file={pki.files['key']}",
            f"server.tls_client_ca_file={pki.files['ca']}",
        ],
    )
    try:
        assert _secure_info(s, pki, pki.client).protocol == "trading.v1"
        for client in (None, pki.stranger):
            f = failure(lambda c=client: _secure_info(s, pki, c))
            assert f.code == grpc.StatusCode.UNAVAILABLE
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["server.tls_cert_file=x.pem"], "go together"),
        (["server.tls_client_ca_file=ca.pem"], "needs server.tls_cert_file"),
        (
            ["server.tls_cert_file=missing.pem", "server.tls_key_file=missing.key"],
            "reading server.tls_cert_file missing.pem",
        ),
    ],
)
def test_tls_settings_are_checked(sets: list[str], message: str) -> None:
    args = [sys.executable, "-m", "trading_system", "serve", "python", "--port", "0"]
    for item in sets:
        args += ["--set", item]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 1 and done.stdout == ""
    assert message in done.stderr


# ---- Health, shutdown, ports --------------------------------------------------------------------


def test_health_check_and_watch() -> None:
    s = start("python", ["server.shutdown_grace_ms=60000"])
    health = Health(s.channel())
    serving = health_pb2.HealthCheckResponse.SERVING
    try:
        for service in ("", "trading.v1.Trading"):
            assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == serving
        f = failure(lambda: health.Check(health_pb2.HealthCheckRequest(service="no.Such")))
        assert (f.code, f.message) == (grpc.StatusCode.NOT_FOUND, 'unknown service "no.Such"')
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
        unknown = health.Watch(health_pb2.HealthCheckRequest(service="no.Such"), timeout=TIMEOUT)
        assert next(watch).status == serving
        assert next(unknown).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
    finally:
        s.proc.send_signal(signal.SIGTERM)
    # Watchers see NOT_SERVING, then their streams end, and the server exits 0 (the open
    # streams do not hold the shutdown for the grace period).
    assert [m.status for m in watch] == [health_pb2.HealthCheckResponse.NOT_SERVING]
    assert list(unknown) == []
    assert s.stop() == 0


def _random_walk(n: int, seed: int) -> Bars:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.005, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    time = np.arange(n, dtype=np.int64) * 60_000 + 1_700_000_000_000
    return Bars(time, open_, high, low, close, rng.uniform(1, 100, n))


def test_sigterm_drains_an_in_flight_analyze() -> None:
    s = start("python", ["logging.level=debug", "server.shutdown_grace_ms=600000"])
    bars = _random_walk(200_000, 7)
    stub = rpc.TradingStub(s.channel(options=BIG))
    call = stub.Analyze.future(analyze_request(bars), timeout=600)
    try:
        _wait_for(s, lambda e: e.get("message") == "call started" and e["method"] == "Analyze")
        # The event loop answers health checks while the engine works in a thread.
        health = Health(s.channel())
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT).status == (
            health_pb2.HealthCheckResponse.SERVING
        )
        s.proc.send_signal(signal.SIGTERM)
        _wait_for(s, lambda e: str(e.get("message")).startswith("shutting down"))
        # While draining: probes see NOT_SERVING, new calls are refused with a reason.
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT).status == (
            health_pb2.HealthCheckResponse.NOT_SERVING
        )
        refused = failure(lambda: stub.GetInfo(pb.InfoRequest(), timeout=TIMEOUT))
        assert refused.code == grpc.StatusCode.UNAVAILABLE
        assert refused.message == "the server is shutting down"
        answer = call.result()
        code = s.proc.wait(600)
    finally:
        s.stop()
    assert code == 0
    want = as_json(analyze(bars, engine_config({})))
    assert exact_diff(want, analysis_doc(answer.analysis)) is None
    _wait_for(s, lambda e: e.get("message") == "stopped")
    # The call ended after the shutdown had begun: it was drained, not cut off.
    order = [
        "shutdown" if str(e.get("message")).startswith("shutting down") else "Analyze"
        for e in _events(s)
        if str(e.get("message")).startswith("shutting down")
        or (e.get("method") == "Analyze" and "status" in e)
    ]
    assert order == ["shutdown", "Analyze"]
    assert _events(s)[-1]["message"] == "stopped"


def test_calls_past_the_grace_period_are_cut_off() -> None:
    s = start("python", ["logging.level=debug", "server.shutdown_grace_ms=0"])
    stub = rpc.TradingStub(s.channel(options=BIG))
    call = stub.Analyze.future(analyze_request(_random_walk(200_000, 8)), timeout=600)
    try:
        _wait_for(s, lambda e: e.get("message") == "call started" and e["method"] == "Analyze")
        s.proc.send_signal(signal.SIGTERM)
        code = s.proc.wait(600)
    finally:
        s.stop()
    assert code == 0, "cut off, but stopped as asked"
    f = failure(call.result)
    assert f.code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    _wait_for(s, lambda e: e.get("message") == "stopped")
    assert any(e["level"] == "warn" and "grace period over" in e["message"] for e in _events(s))


def test_a_port_in_use_is_refused(server: Server) -> None:
    port = server.address.rsplit(":", 1)[1]
    args = [sys.executable, "-m", "trading_system", "serve", "python", "--port", port]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 1 and done.stdout == ""
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    # The first server is untouched.
    health = Health(server.channel())
    assert health.Check(health_pb2.HealthCheckRequest()).status == 1


def test_the_server_loads_no_native_module(server: Server, stub: rpc.TradingStub) -> None:
    # The standby must not share the Rust code's failures: not even loaded in its process.
    stub.Analyze(analyze_request(load_csv(BTC)), timeout=TIMEOUT)
    maps = Path(f"/proc/{server.proc.pid}/maps")
    if not maps.exists():
        pytest.skip("no /proc here")
    text = maps.read_text()
    assert "numpy" in text, "extension modules show in the map"
    assert "trading_system/native" not in text


# ---- Logs and the command line ------------------------------------------------------------------


def _events(s: Server) -> list[dict[str, Any]]:
    return [json.loads(line) for line in list(s.log) if line.startswith("{")]


def _wait_for(s: Server, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first log line that matches, once the server has written it (the log is read by
    another thread); fails after about TIMEOUT seconds."""
    pause = threading.Event()
    for _ in range(int(TIMEOUT / 0.05)):
        found = [e for e in _events(s) if match(e)]
        if found:
            return found[0]
        pause.wait(0.05)
    raise AssertionError(f"no such log line; the server exited with {s.proc.poll()}")


def test_one_json_line_per_call_and_stream_message(server: Server, stub: rpc.TradingStub) -> None:
    rows = rows_of(BTC)
    with Conversation(stub) as c:
        c.send(open_msg("LOGS"))
        c.send(bar_msg(1, rows[0]))
        c.send(bar_msg(3, rows[1]))
    stub.GetInfo(pb.InfoRequest())
    last = _wait_for(server, lambda e: e.get("method") == "GetInfo")
    lines = [e for e in _events(server) if e.get("session") == "LOGS/30m"]
    keys = ["ts", "level", "engine", "method", "session", "seq", "latency_ms", "status"]
    assert [(e["seq"], e["status"]) for e in lines] == [
        (0, "OK"),
        (1, "OK"),
        (3, "FAILED_PRECONDITION"),
    ]
    for e in [*lines, last]:
        assert list(e)[: len(keys)] == keys
        assert (e["engine"], e["level"]) == ("python", "info")
        assert isinstance(e["latency_ms"], float) and e["ts"].endswith("Z")
    assert lines[2]["message"] == "expected sequence 2, got 3"
    assert (last["session"], last["seq"], last["status"]) == (None, None, "OK")


def test_serve_command_line(tmp_path: Path) -> None:
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "trading_system", "serve", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env={**os.environ, **(env or {})},
        )

    bad = run("python", "--port", "0", "--set", "server.replay_window=0")
    assert bad.returncode == 2 and "server.replay_window: must be >= 1, got 0" in bad.stderr
    bad = run("python", "--port", "0", "--set", "logging.level=loud")
    assert bad.returncode == 2 and "logging.level must be one of" in bad.stderr
    assert run("python", "--port", "70000").returncode == 2
    assert run("python", "--config", str(tmp_path / "missing.yaml")).returncode == 1
    # serve rust: the Rust binary with the same arguments (TRADING_ENGINE_BIN names it).
    fake = tmp_path / "trading-engine"
    fake.write_text('#!/bin/sh\necho "$@"\nexit 3\n', encoding="utf-8")
    fake.chmod(0o755)
    done = run(
        "rust",
        "--port",
        "5",
        "--config",
        "c.yaml",
        "--set",
        "a.b=1",
        "--set",
        "c.d=x y",
        env={"TRADING_ENGINE_BIN": str(fake)},
    )
    assert (done.returncode, done.stdout) == (
        3,
        "serve --port 5 --config c.yaml --set a.b=1 --set c.d=x y\n",
    )
    missing = run("rust", env={"TRADING_ENGINE_BIN": str(tmp_path / "none")})
    assert missing.returncode == 1 and "TRADING_ENGINE_BIN" in missing.stderr


# ---- Replica: CatchUp and CloseSessions ---------------------------------------------------------


def entry(
    symbol: str,
    bars: list[pb.BarMessage],
    fresh: bool = False,
    after_seq: int = 0,
    timeframe: str = "30m",
    **kw: Any,
) -> pb.SessionCatchUp:
    config = kw.pop("config", {})
    return pb.SessionCatchUp(
        open=pb.OpenSession(symbol=symbol, timeframe=timeframe, config=overrides(config), **kw),
        fresh=fresh,
        after_seq=after_seq,
        bars=bars,
    )


def journal(rows: list[Row], repairs: bool = True) -> list[pb.StreamRequest]:
    """A stream's bar messages with provisional bars replaced once or twice, -0.0 volumes and
    (``repairs``) bars only ``validation.repair`` takes: what the monitor journals."""
    out: list[pb.StreamRequest] = []
    seq = 0
    for i, (t, o, h, lo, c, v) in enumerate(rows):
        if i % 4 == 1:
            seq += 1
            out.append(bar_msg(seq, (t, o, o, o, o, -0.0)))
            if i % 8 == 1:
                seq += 1
                out.append(bar_msg(seq, (t, o, h, o, h, 1.0), replace=True))
            seq += 1
            out.append(bar_msg(seq, (t, o, h, lo, c, v), replace=True))
        elif repairs and i % 9 == 4:
            seq += 1
            out.append(bar_msg(seq, (t, o, min(o, c), lo, c, v)))  # repaired
        else:
            seq += 1
            out.append(bar_msg(seq, (t, o, h, lo, c, v)))
    return out


def snapshot(stub: rpc.TradingStub, symbol: str) -> pb.SnapshotResponse:
    snap = stub.GetSnapshot(pb.SnapshotRequest(symbol=symbol, timeframe="30m"), timeout=TIMEOUT)
    snap.session = ""
    return snap


def test_catch_up_equals_the_stream(server: Server, stub: rpc.TradingStub) -> None:
    replica = rpc.ReplicaStub(server.channel(options=BIG))
    cfg = {"validation": {"repair": True}, "macd": {"fast_period": 5}}
    messages = journal(rows_of(BTC)[:700])
    head, rest = messages[:-40], messages[-40:]
    with Conversation(stub) as c:
        c.send(open_msg("STREAMED", config=cfg, with_macd=True))
        for m in head:
            assert c.send(m).WhichOneof("kind") == "update"
    # The same messages caught up in three batches: fresh, then continued.
    cuts = [0, 1, 300, len(head)]
    for a, b in zip(cuts, cuts[1:], strict=False):
        e = entry("CAUGHT", [m.bar for m in head[a:b]], a == 0, a, config=cfg, with_macd=True)
        got = replica.CatchUp(pb.CatchUpRequest(sessions=[e]), timeout=TIMEOUT)
        assert got.engine == "python"
        (one,) = got.sessions
        assert not one.HasField("error"), one.error
        assert (one.session, one.last_seq) == ("CAUGHT/30m", b)
    assert one.bars == snapshot(stub, "STREAMED").analysis.bars
    assert snapshot(stub, "CAUGHT") == snapshot(stub, "STREAMED")
    # Streams continue both alike: the same answers, the same state.
    last = len(head)
    with Conversation(stub) as s, Conversation(stub) as c:
        s.send(open_msg("STREAMED", resume=True))
        opened = c.send(open_msg("CAUGHT", resume=True)).opened
        assert (opened.last_seq, opened.resumed) == (last, True)
        # A duplicate of a caught-up number is out of sequence (no cached answer)...
        dup = c.send(head[-1])
        assert (dup.error.code, dup.error.expected_seq) == (
            grpc.StatusCode.FAILED_PRECONDITION.value[0],
            last + 1,
        )
        assert dup.error.message == f"expected sequence {last + 1}, got {last}"
        for m in rest:
            assert s.send(m) == c.send(m)
    assert snapshot(stub, "CAUGHT") == snapshot(stub, "STREAMED")


def test_catch_up_refusals_change_nothing(server: Server, stub: rpc.TradingStub) -> None:
    replica = rpc.ReplicaStub(server.channel(options=BIG))
    rows = rows_of(BTC)
    messages = journal(rows[:80], repairs=False)
    bars = [m.bar for m in messages]
    start_with = replica.CatchUp(
        pb.CatchUpRequest(sessions=[entry("KEEP", bars[:50], fresh=True)]), timeout=TIMEOUT
    ).sessions[0]
    assert not start_with.HasField("error") and start_with.last_seq == 50
    before = snapshot(stub, "KEEP")

    def bar_at(seq: int, row: Row, op: pb.Op = pb.APPEND) -> pb.BarMessage:
        t, o, h, lo, c, v = row
        return pb.BarMessage(
            seq=seq, op=op, bar=pb.Bar(time=t, open=o, high=h, low=lo, close=c, volume=v)
        )

    good = bars[50:60]
    bad_row = (rows[200][0], -1.0, *rows[200][2:])  # a negative open, after good bars
    later = bars[50:53] + [bar_at(54, bad_row)] + bars[54:60]
    no_bar = pb.BarMessage(seq=51, op=pb.APPEND)
    bad_op = pb.BarMessage(seq=51, op=UNDEFINED_OP, bar=bars[50].bar)
    gap = bars[50:52] + [bar_at(60, rows[100])]
    cases: list[tuple[pb.SessionCatchUp, grpc.StatusCode, str, list[tuple[str, str, int]], int]] = [
        (entry("KEEP", good, after_seq=49), grpc.StatusCode.FAILED_PRECONDITION,
         "session at sequence 50, catch-up after 49", [], 51),
        (entry("KEEP", good, after_seq=51), grpc.StatusCode.FAILED_PRECONDITION,
         "session at sequence 50, catch-up after 51", [], 51),
        (entry("GONE", good, after_seq=50), grpc.StatusCode.NOT_FOUND,
         "session GONE/30m not found", [], 0),
        (entry("KEEP", gap, after_seq=50), grpc.StatusCode.INVALID_ARGUMENT,
         "invalid bars: seq_order: expected sequence 53, got 60",
         [("bars[2].seq", "seq_order: expected sequence 53, got 60", -1)], 0),
        (entry("KEEP", [no_bar], after_seq=50), grpc.StatusCode.INVALID_ARGUMENT,
         "bar message 51 carries no bar", [], 0),
        (entry("KEEP", [bad_op], after_seq=50), grpc.StatusCode.INVALID_ARGUMENT,
         "bar message 51: op must be APPEND or REPLACE_LAST, got 7", [], 0),
        (entry("KEEP", good, fresh=True, after_seq=50), grpc.StatusCode.INVALID_ARGUMENT,
         "invalid catch-up: after_seq must be 0 for a fresh session, got 50",
         [("after_seq", "must be 0 for a fresh session, got 50", -1)], 0),
        (entry("KEEP", bars[:5], fresh=True, config={"macd": {"fast_period": 40}}),
         grpc.StatusCode.INVALID_ARGUMENT,
         "invalid configuration: macd.fast_period: must be < macd.slow_period (26), "
         "got 40",
         [("config.macd.fast_period", "must be < macd.slow_period (26), got 40", -1)], 0),
        (entry("KEEP", [bar_at(1, rows[0], pb.REPLACE_LAST)], fresh=True),
         grpc.StatusCode.FAILED_PRECONDITION,
         "replace_last: the session has no bar to replace", [], 1),
    ]  # fmt: skip
    for e, code, message, violations, expected in cases:
        (got,) = replica.CatchUp(pb.CatchUpRequest(sessions=[e]), timeout=TIMEOUT).sessions
        err = got.error
        assert (err.code, err.message) == (code.value[0], message), got
        assert [(v.field, v.description, v.index) for v in err.field_violations] == violations
        assert err.expected_seq == expected
        if e.open.symbol == "KEEP":
            assert (got.session, got.last_seq, got.bars) == ("KEEP/30m", 50, before.analysis.bars)
        assert snapshot(stub, "KEEP") == before, message
    # A bad bar among good ones: the stream's answer for it, nothing applied.
    (got,) = replica.CatchUp(
        pb.CatchUpRequest(sessions=[entry("KEEP", later, after_seq=50)]), timeout=TIMEOUT
    ).sessions
    with Conversation(stub) as c:
        c.send(open_msg("PROBE"))
        for m in messages[:53]:
            c.send(m)
        want = c.send(bar_msg(54, bad_row)).error
    assert got.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert got.error.field_violations == want.field_violations
    assert got.error.message == want.message and got.error.expected_seq == 0
    assert snapshot(stub, "KEEP") == before
    # Entries are independent: a refused one next to good ones, in order.
    both = replica.CatchUp(
        pb.CatchUpRequest(
            sessions=[
                entry("KEEP", good, after_seq=50),
                entry("bad symbol!", good),
                entry("NEW", bars[:3], fresh=True),
            ]
        ),
        timeout=TIMEOUT,
    ).sessions
    assert [(x.session, x.last_seq, x.HasField("error")) for x in both] == [
        ("KEEP/30m", 60, False),
        ("bad symbol!/30m", 0, True),
        ("NEW/30m", 3, False),
    ]
    assert both[1].error.field_violations[0].field == "open.symbol"


def collapsed(messages: list[pb.StreamRequest]) -> list[Row]:
    """A journal's bars with every append and replacement applied (the monitor's checkpoint)."""
    out: list[Row] = []
    for m in messages:
        b = m.bar.bar
        row = (b.time, b.open, b.high, b.low, b.close, b.volume)
        if m.bar.op == pb.REPLACE_LAST:
            out[-1] = row
        else:
            out.append(row)
    return out


def renumbered(messages: list[pb.StreamRequest], first: int) -> list[pb.StreamRequest]:
    out = []
    for k, m in enumerate(messages):
        m = pb.StreamRequest.FromString(m.SerializeToString())
        m.bar.seq = first + k
        out.append(m)
    return out


def based(
    symbol: str, base: list[Row], after_seq: int, bars: list[pb.BarMessage], **kw: Any
) -> pb.SessionCatchUp:
    """A fresh entry from ``base``."""
    e = entry(symbol, bars, fresh=True, after_seq=after_seq, **kw)
    if base:
        e.base.CopyFrom(columns(bars_from(base)))
    return e


def bare(snap: pb.SnapshotResponse) -> pb.SnapshotResponse:
    snap.last_seq = 0
    return snap


def test_catch_up_from_a_base_equals_streaming_it(server: Server, stub: rpc.TradingStub) -> None:
    """A fresh session from a base B standing at after_seq A, then messages M, equals a stream
    of B as appends 1..len(B) then M: the snapshot, and the answers to later messages (the first
    of them replacing the last base bar) but for their numbers."""
    replica = rpc.ReplicaStub(server.channel(options=BIG))
    cfg = {"validation": {"repair": True}, "macd": {"fast_period": 5}}
    messages = journal(rows_of(BTC)[:700])
    cut = next(k for k in range(400, len(messages)) if messages[k].bar.op == pb.REPLACE_LAST)
    base = collapsed(messages[:cut])
    assert len(base) > 64  # applied in a worker thread
    t, o, _, _, _, v = base[-1]
    moved = (t, o, o * 1.01, o * 0.99, o * 0.99, v)
    last_again = [bar_msg(0, moved, replace=True), bar_msg(0, base[-1], replace=True)]
    for symbol, after_seq, caught, later in [
        # M (starting with a replacement of the last base bar) caught up, then a stream.
        ("BASED", 5_000, messages[cut : cut + 100], messages[cut + 100 :]),
        # No M: the stream replaces the last base bar first.
        ("BASED0", 77, [], last_again + messages[cut:]),
        ("BASED1", 0, [], last_again + messages[cut : cut + 50]),
    ]:
        e = based(
            symbol,
            base,
            after_seq,
            [m.bar for m in renumbered(caught, after_seq + 1)],
            config=cfg,
            with_macd=True,
        )
        (got,) = replica.CatchUp(pb.CatchUpRequest(sessions=[e]), timeout=TIMEOUT).sessions
        assert not got.HasField("error"), got.error
        n = len(collapsed([bar_msg(0, r) for r in base] + caught))
        assert (got.session, got.last_seq, got.bars) == (
            f"{symbol}/30m",
            after_seq + len(caught),
            n,
        )
        ref = f"REF{symbol}"
        streamed = [bar_msg(k + 1, r) for k, r in enumerate(base)]
        streamed += renumbered(caught, len(base) + 1)
        with Conversation(stub) as c:
            c.send(open_msg(ref, config=cfg, with_macd=True))
            assert all(c.send(m).WhichOneof("kind") == "update" for m in streamed)
        snap = snapshot(stub, symbol)
        assert snap.last_seq == after_seq + len(caught)
        assert bare(snap) == bare(snapshot(stub, ref))
        with Conversation(stub) as s, Conversation(stub) as c:
            s.send(open_msg(ref, resume=True))
            opened = c.send(open_msg(symbol, resume=True)).opened
            assert (opened.last_seq, opened.bars) == (after_seq + len(caught), n)
            next_ref, next_seq = len(streamed) + 1, after_seq + len(caught) + 1
            for k, (a, b) in enumerate(
                zip(renumbered(later, next_ref), renumbered(later, next_seq), strict=True)
            ):
                want, answer = s.send(a), c.send(b)
                assert answer.WhichOneof("kind") == "update", answer
                assert (want.seq, answer.seq) == (next_ref + k, next_seq + k)
                want.seq = answer.seq = 0
                assert answer == want
        assert bare(snapshot(stub, symbol)) == bare(snapshot(stub, ref))


def test_catch_up_base_refusals(server: Server, stub: rpc.TradingStub) -> None:
    """A base on an entry that is not fresh, base columns of different lengths, a bad base bar
    (refused as its append, at its index), a bad message after a good base: refused in-band,
    the session of that name left as it was."""
    replica = rpc.ReplicaStub(server.channel(options=BIG))
    rows = rows_of(BTC)
    bars = [m.bar for m in journal(rows[:40], repairs=False)]
    (kept,) = replica.CatchUp(
        pb.CatchUpRequest(sessions=[entry("BKEEP", bars[:20], fresh=True)]), timeout=TIMEOUT
    ).sessions
    assert not kept.HasField("error")
    before = snapshot(stub, "BKEEP")

    def refused(e: pb.SessionCatchUp) -> pb.StreamError:
        (got,) = replica.CatchUp(pb.CatchUpRequest(sessions=[e]), timeout=TIMEOUT).sessions
        assert got.HasField("error")
        if e.open.symbol == "BKEEP":
            assert (got.session, got.last_seq, got.bars) == ("BKEEP/30m", 20, before.analysis.bars)
            assert snapshot(stub, "BKEEP") == before
        return got.error

    def violations(err: pb.StreamError) -> list[tuple[str, str, str, int]]:
        return [(v.field, v.description, v.reason, v.index) for v in err.field_violations]

    def streamed(symbol: str, ok: list[pb.StreamRequest], bad: pb.StreamRequest) -> pb.StreamError:
        """What a stream answers for ``bad`` after ``ok``."""
        with Conversation(stub) as c:
            c.send(open_msg(symbol))
            assert all(c.send(m).WhichOneof("kind") == "update" for m in ok)
            return c.send(bad).error

    invalid = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    only_fresh = "invalid catch-up: base is only for a fresh session"
    # A base on an entry that is not fresh, the session existing or not.
    for symbol in ("BKEEP", "BNONE"):
        e = entry(symbol, bars[20:22], after_seq=20)
        e.base.CopyFrom(columns(bars_from(rows[:3])))
        err = refused(e)
        assert (err.code, err.message, err.expected_seq) == (invalid, only_fresh, 0)
        assert violations(err) == [("base", only_fresh, "", -1)]
    # Columns of different lengths.
    e = based("BKEEP", rows[:5], 9, bars[:2])
    del e.base.close[-1]
    e.base.volume.append(1.0)
    err = refused(e)
    assert (err.code, err.message) == (
        invalid,
        "invalid bars: columns of different lengths: base.close has 4 values, base.time has 5; "
        "base.volume has 6 values, base.time has 5",
    )
    assert violations(err) == [
        ("base.close", "has 4 values, base.time has 5", "", -1),
        ("base.volume", "has 6 values, base.time has 5", "", -1),
    ]
    # Without a base, after_seq must still be 0.
    err = refused(entry("BKEEP", bars[:2], fresh=True, after_seq=3))
    assert violations(err) == [("after_seq", "must be 0 for a fresh session, got 3", "", -1)]
    # A bad base bar (and a later one): what a stream appending the base answers for the first.
    bad_base = rows[:30]
    bad_base[17] = (bad_base[17][0], -1.0, *bad_base[17][2:])
    bad_base[21] = (bad_base[20][0], *bad_base[21][1:])
    caught = [m.bar for m in renumbered(journal(rows[30:32]), 101)]
    err = refused(based("BKEEP", bad_base, 100, caught))
    ok = [bar_msg(k + 1, r) for k, r in enumerate(bad_base[:17])]
    assert err == streamed("BPROBE", ok, bar_msg(18, bad_base[17]))
    assert err.code == invalid and {v.index for v in err.field_violations} == {17}
    # A bad message after a good base: the stream's answer for it.
    bad = (rows[41][0], *rows[40][1:5], -1.0)
    late = [m.bar for m in renumbered([bar_msg(0, rows[40]), bar_msg(0, bad)], 101)]
    err = refused(based("BKEEP", rows[:30], 100, late))
    ok = [bar_msg(k + 1, r) for k, r in enumerate([*rows[:30], rows[40]])]
    assert err == streamed("BPROBE2", ok, bar_msg(32, bad))
    assert err.code == invalid and {v.index for v in err.field_violations} == {31}
    # An empty base is no base: a fresh entry at 0, and no refusal on a session not fresh.
    e = entry("BKEEP", bars[20:22], after_seq=20)
    e.base.CopyFrom(pb.Bars())
    (got,) = replica.CatchUp(pb.CatchUpRequest(sessions=[e]), timeout=TIMEOUT).sessions
    assert (got.HasField("error"), got.last_seq) == (False, 22)
    (got,) = replica.CatchUp(
        pb.CatchUpRequest(sessions=[based("BKEEP", [], 0, bars[:3])]), timeout=TIMEOUT
    ).sessions
    assert (got.HasField("error"), got.last_seq) == (False, 3)


def test_close_sessions(stub: rpc.TradingStub, server: Server) -> None:
    replica = rpc.ReplicaStub(server.channel())
    rows = rows_of(BTC)
    with Conversation(stub) as c:
        c.send(open_msg("CLOSE1"))
        c.send(bar_msg(1, rows[0]))
        with Conversation(stub) as d:
            d.send(open_msg("CLOSE2"))
        before = stub.GetInfo(pb.InfoRequest(), timeout=TIMEOUT).sessions
        names = [
            pb.SessionName(symbol="CLOSE1", timeframe="30m"),
            pb.SessionName(symbol="CLOSE2", timeframe="30m"),
            pb.SessionName(symbol="NEVER", timeframe="30m"),
            pb.SessionName(symbol="CLOSE1", timeframe="30m"),
        ]
        got = replica.CloseSessions(pb.CloseSessionsRequest(sessions=names), timeout=TIMEOUT)
        assert (got.engine, got.closed, got.sessions) == ("python", 2, before - 2)
        f = failure(lambda: c.send(bar_msg(2, rows[1])))
        assert (f.code, f.message) == (grpc.StatusCode.NOT_FOUND, "session CLOSE1/30m not found")
    f = failure(lambda: stub.GetSnapshot(pb.SnapshotRequest(symbol="CLOSE1", timeframe="30m")))
    assert f.code == grpc.StatusCode.NOT_FOUND


def test_max_sessions_evicts_the_least_recently_used_idle_one() -> None:
    s = start("python", ["server.max_sessions=2"])
    try:
        stub = rpc.TradingStub(s.channel())
        rows = rows_of(BTC)
        with Conversation(stub) as a:
            a.send(open_msg("A"))
            with Conversation(stub) as b:
                b.send(open_msg("B"))
            with Conversation(stub) as c:  # B is idle: closed for C
                c.send(open_msg("C"))
                f = failure(lambda: list(stub.Stream(iter([open_msg("D")]), timeout=TIMEOUT)))
                assert (f.code, f.message) == (
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "the engine holds server.max_sessions (2) sessions, each with a stream "
                    "attached",
                )
            assert a.send(bar_msg(1, rows[0])).WhichOneof("kind") == "update"
            # C has no stream now: D takes its place; A (in use) stays.
            list(stub.Stream(iter([open_msg("D")]), timeout=TIMEOUT))
        missing = [
            n
            for n in "ABCD"
            if failure_or_none(
                lambda n=n: stub.GetSnapshot(pb.SnapshotRequest(symbol=n, timeframe="30m"))
            )
        ]
        assert missing == ["B", "C"]
        closed = "session closed: server.max_sessions reached, least recently used"
        assert [e["session"] for e in _events(s) if e.get("message") == closed] == [
            "B/30m",
            "C/30m",
        ]
    finally:
        assert s.stop() == 0


def failure_or_none(fn: Callable[[], Any]) -> grpc.RpcError | None:
    try:
        fn()
    except grpc.RpcError as e:
        return e
    return None


def test_catch_up_is_logged_once(server: Server) -> None:
    replica = rpc.ReplicaStub(server.channel())
    rows = rows_of(BTC)
    bars = [m.bar for m in journal(rows[:10], repairs=False)]
    renumbered_bars = [m.bar for m in renumbered(journal(rows[5:7], repairs=False), 8)]
    replica.CatchUp(
        pb.CatchUpRequest(
            sessions=[
                entry("LOGGED", bars, fresh=True),
                based("LOGGED2", rows[:5], 7, renumbered_bars),  # base bars count too
            ]
        ),
        timeout=TIMEOUT,
    )
    line = _wait_for(server, lambda e: e.get("method") == "CatchUp" and e["sessions"] == 2)
    want = len(bars) + 5 + len(renumbered_bars)
    assert (line["bars"], line["status"], line["session"]) == (want, "OK", None)
    assert isinstance(line["latency_ms"], float)


# ---- Replica: Apply -----------------------------------------------------------------------------


def named(
    symbol: str, msg: pb.StreamRequest | pb.BarMessage | None, timeframe: str = "30m"
) -> pb.SessionMessage:
    """An Apply message: a stream message's BarMessage for the session ``symbol/timeframe``."""
    m = pb.SessionMessage(session=pb.SessionName(symbol=symbol, timeframe=timeframe))
    if msg is not None:
        m.bar.CopyFrom(msg.bar if isinstance(msg, pb.StreamRequest) else msg)
    return m


class Applier:
    """An Apply stream spoken one request at a time: each :meth:`send` waits for its answer."""

    def __init__(self, replica: rpc.ReplicaStub, metadata: Any = None) -> None:
        self._requests: queue.Queue[Any] = queue.Queue()
        self._answers = replica.Apply(
            iter(self._requests.get, None), metadata=metadata, timeout=TIMEOUT
        )

    def send(self, messages: list[pb.SessionMessage]) -> list[pb.StreamResponse]:
        self._requests.put(pb.ApplyRequest(messages=messages))
        return list(next(self._answers).answers)

    def __enter__(self) -> Applier:
        return self

    def __exit__(self, *exc: object) -> None:
        self._requests.put(None)
        self._answers.cancel()


def edited(msg: pb.StreamRequest, seq: int | None = None, **bar: Any) -> pb.StreamRequest:
    """A copy of a bar message with another number and/or other bar fields."""
    m = pb.StreamRequest.FromString(msg.SerializeToString())
    if seq is not None:
        m.bar.seq = seq
    for key, value in bar.items():
        setattr(m.bar.bar, key, value)
    return m


def with_refusals(messages: list[pb.StreamRequest]) -> list[pb.StreamRequest]:
    """A journal with, after every 9th message, one of the stream's refusals or a duplicate:
    the cached answer, another payload (ABORTED), a gap, zero, a number past the replay window,
    a bad bar, a duplicate time, a message without bar, a bad op."""
    out: list[pb.StreamRequest] = []
    for k, m in enumerate(messages):
        out.append(m)
        if k % 9 != 8:
            continue
        seq, b = m.bar.seq, m.bar.bar
        out.append(
            [
                m,
                edited(m, high=b.high + 1),
                edited(m, seq + 3),
                edited(m, 0),
                edited(m, max(seq - WINDOW - 1, 1)),
                edited(m, seq + 1, open=math.nan),
                pb.StreamRequest(bar=pb.BarMessage(seq=seq + 1, op=pb.APPEND, bar=b)),
                pb.StreamRequest(bar=pb.BarMessage(seq=seq + 1, op=pb.APPEND)),
                pb.StreamRequest(bar=pb.BarMessage(seq=seq + 1, op=UNDEFINED_OP, bar=b)),
            ][(k // 9) % 9]
        )
    return out


def test_apply_answers_as_the_stream(server: Server, stub: rpc.TradingStub) -> None:
    """Sessions opened by streams (then closed), fed through Apply in requests of every size with
    the sessions interleaved: every answer is the one a stream of a twin session gives for the
    same message, and each session's snapshot equals its twin's and an Analyze of its bars."""
    replica = rpc.ReplicaStub(server.channel(options=BIG))
    rows = rows_of(BTC)
    sessions = {  # symbol: (timeframe, configuration, with_macd, rows)
        "APA": ("30m", {}, True, rows[:150]),
        "APB": ("1h", {"pen": {"definition": "traditional"}}, False, rows[200:330]),
        "APC": ("30m", {"macd": {"fast_period": 5}}, True, rows[400:490]),
    }
    scripts = {
        symbol: with_refusals(journal(r, repairs=False)) for symbol, (*_, r) in sessions.items()
    }
    # The twins: the same messages on streams, answers kept.
    twins: dict[str, list[pb.StreamResponse]] = {}
    for symbol, (timeframe, cfg, macd, _) in sessions.items():
        list(stub.Stream(iter([open_msg(symbol, timeframe, config=cfg, with_macd=macd)])))
        with Conversation(stub) as c:
            c.send(open_msg(f"TWIN{symbol}", timeframe, config=cfg, with_macd=macd))
            twins[symbol] = [c.send(m) for m in scripts[symbol]]
    assert sum(a.HasField("error") for t in twins.values() for a in t) > 25
    # Interleaved: a few of one session, a few of the next, ...; then cut into requests.
    order: list[tuple[str, int]] = []
    at = dict.fromkeys(sessions, 0)
    turn = 0
    while any(at[s] < len(scripts[s]) for s in sessions):
        for s in sessions:
            take = 1 + (turn * 7 + len(s)) % 5
            order += [(s, k) for k in range(at[s], min(at[s] + take, len(scripts[s])))]
            at[s] = min(at[s] + take, len(scripts[s]))
        turn += 1
    got: list[pb.StreamResponse] = []
    with Applier(replica) as a:
        assert a.send([]) == []
        start_at, size = 0, 1
        while start_at < len(order):
            part = order[start_at : start_at + size]
            messages = [named(s, scripts[s][k], sessions[s][0]) for s, k in part]
            answers = a.send(messages)
            assert len(answers) == len(messages)
            got += answers
            start_at += size
            size = size * 3 % 61 + 1
    for (s, k), answer in zip(order, got, strict=True):
        assert answer == twins[s][k], (s, k)
        assert answer.engine == "python" and answer.seq == scripts[s][k].bar.seq
    for symbol, (timeframe, cfg, macd, _) in sessions.items():
        request = pb.SnapshotRequest(symbol=symbol, timeframe=timeframe)
        snap = stub.GetSnapshot(request, timeout=TIMEOUT)
        twin = stub.GetSnapshot(
            pb.SnapshotRequest(symbol=f"TWIN{symbol}", timeframe=timeframe), timeout=TIMEOUT
        )
        assert snap.session == f"{symbol}/{timeframe}"
        assert snap.last_seq == twin.last_seq == journal(sessions[symbol][3])[-1].bar.seq
        assert snap.analysis == twin.analysis
        bars = bars_from(collapsed(journal(sessions[symbol][3], repairs=False)))
        whole = stub.Analyze(analyze_request(bars, cfg, macd), timeout=TIMEOUT)
        assert snap.analysis == whole.analysis
    # A stream resuming an applied session goes on from where Apply left it (cached answers).
    last = journal(sessions["APA"][3], repairs=False)[-1]
    with Conversation(stub) as c:
        assert c.send(open_msg("APA", resume=True)).opened.last_seq == last.bar.seq
        assert c.send(last) == twins["APA"][scripts["APA"].index(last)]


def test_apply_refusals_by_name(server: Server, stub: rpc.TradingStub) -> None:
    replica = rpc.ReplicaStub(server.channel())
    rows = rows_of(BTC)
    list(stub.Stream(iter([open_msg("APN")])))
    bad = failure(lambda: list(stub.Stream(iter([open_msg("bad symbol!", timeframe="7x")]))))
    assert len(bad.violations) == 2
    with Applier(replica) as a:
        unknown, invalid, first, no_bar, gone, empty = a.send(
            [
                named("NOPE", bar_msg(4, rows[0])),
                named("bad symbol!", bar_msg(5, rows[0]), timeframe="7x"),
                named("APN", bar_msg(1, rows[0])),
                named("APN", None),  # no BarMessage: an empty one (number 0)
                named("APN", bar_msg(2, rows[1]), timeframe="1h"),
                named("", bar_msg(1, rows[0]), timeframe=""),
            ]
        )
        assert (unknown.seq, unknown.engine) == (4, "python")
        assert unknown.error == pb.StreamError(
            code=grpc.StatusCode.NOT_FOUND.value[0], message="session NOPE/30m not found"
        )
        # The message and violations an open with that name gets.
        assert (invalid.seq, invalid.error.code) == (5, grpc.StatusCode.INVALID_ARGUMENT.value[0])
        assert invalid.error.message == bad.message
        assert [(v.field, v.description) for v in invalid.error.field_violations] == bad.violations
        assert all((v.reason, v.index) == ("", -1) for v in invalid.error.field_violations)
        assert first.WhichOneof("kind") == "update"
        assert (no_bar.seq, no_bar.error.message, no_bar.error.expected_seq) == (
            0,
            "expected sequence 2, got 0",
            2,
        )
        assert gone.error.message == "session APN/1h not found"
        assert [v.field for v in empty.error.field_violations] == ["open.symbol", "open.timeframe"]
        # A closed session is unknown; a new open of it is a new session.
        replica.CloseSessions(
            pb.CloseSessionsRequest(sessions=[pb.SessionName(symbol="APN", timeframe="30m")]),
            timeout=TIMEOUT,
        )
        (closed,) = a.send([named("APN", bar_msg(2, rows[1]))])
        assert closed.error.code == grpc.StatusCode.NOT_FOUND.value[0]
        list(stub.Stream(iter([open_msg("APN")])))
        (again,) = a.send([named("APN", bar_msg(1, rows[5]))])
        assert again.WhichOneof("kind") == "update"
    snap = stub.GetSnapshot(pb.SnapshotRequest(symbol="APN", timeframe="30m"), timeout=TIMEOUT)
    assert (snap.last_seq, snap.analysis.bars) == (1, 1)


def test_apply_alongside_a_catch_up(server: Server, stub: rpc.TradingStub) -> None:
    """A long catch-up (in a worker thread, holding the session) and Apply messages for the same
    session at once: whichever comes first, the other is refused as out of sequence, and the
    session holds exactly what was applied."""
    replica = rpc.ReplicaStub(server.channel(options=BIG))
    rows = rows_of(BTC)
    messages = journal(rows[:900], repairs=False)
    bars = [m.bar for m in messages]
    for attempt in range(3):
        symbol = f"APCU{attempt}"
        replica.CatchUp(
            pb.CatchUpRequest(sessions=[entry(symbol, bars[:10], fresh=True)]), timeout=TIMEOUT
        )
        caught = replica.CatchUp.future(
            pb.CatchUpRequest(sessions=[entry(symbol, bars[10:], after_seq=10)]), timeout=TIMEOUT
        )
        with Applier(replica) as a:
            applied = [a.send([named(symbol, messages[10])]) for _ in range(3)]
            (one,) = caught.result().sessions
            (after,) = a.send([named(symbol, messages[11])])
        first = applied[0][0]
        if one.HasField("error"):  # Apply came first: 11 applied (then its cached answer)
            assert first.WhichOneof("kind") == "update"
            assert all(x == applied[0] for x in applied)
            assert one.error.message == "session at sequence 11, catch-up after 10"
            assert after.WhichOneof("kind") == "update"
            want = 12
        else:  # the catch-up came first: 11 is behind the session, 12 too
            assert one.last_seq == len(bars)
            assert first.error.expected_seq == len(bars) + 1
            assert after.error.expected_seq == len(bars) + 1
            want = len(bars)
        snap = stub.GetSnapshot(pb.SnapshotRequest(symbol=symbol, timeframe="30m"))
        assert snap.last_seq == want
        whole = stub.Analyze(analyze_request(bars_from(collapsed(messages[:want]))))
        assert snap.analysis == whole.analysis


def test_apply_takes_a_held_session_in_turn() -> None:
    """In process, the service itself: an Apply message for a session whose lock is held (a
    snapshot or long catch-up in a worker thread) waits for it, and the messages after it wait
    too (in order); a session replaced meanwhile gets it under its name; a catch-up that was
    waiting for the session checks its number once it holds the session."""
    rows = rows_of(BTC)
    msgs = journal(rows[:20], repairs=False)

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            svc = TradingService(engine_config(), MAX_BYTES, WINDOW, pool)
            x = svc.sessions.create("X/30m", svc.config, False)
            y = svc.sessions.create("Y/30m", svc.config, False)

            async def run(*batches: list[pb.SessionMessage]) -> list[list[pb.StreamResponse]]:
                async def requests() -> AsyncIterator[Sized[pb.ApplyRequest]]:
                    for b in batches:
                        r = pb.ApplyRequest(messages=b)
                        yield Sized(r.ByteSize(), r)

                context: Any = None  # not used but to end the call with an error
                return [list(r.answers) async for r in svc.apply(requests(), context)]

            async def settle() -> None:
                for _ in range(5):
                    await asyncio.sleep(0)

            # Held: X waits, and Y after it too.
            await x.lock.acquire()
            task = asyncio.ensure_future(run([named("X", msgs[0]), named("Y", msgs[0])]))
            await settle()
            assert not task.done() and (x.last_seq, y.last_seq) == (0, 0)
            x.lock.release()
            [[ax, ay]] = await task
            assert ax.update.bars == ay.update.bars == 1 and (x.last_seq, y.last_seq) == (1, 1)
            # Replaced while waiting: the new session of the name takes the message.
            await x.lock.acquire()
            task = asyncio.ensure_future(run([named("X", msgs[0])]))
            await settle()
            x2 = svc.sessions.create("X/30m", svc.config, False)
            x.lock.release()
            [[a2]] = await task
            assert a2.WhichOneof("kind") == "update" and (x.last_seq, x2.last_seq) == (1, 1)
            # A catch-up waiting for X2 while Apply moves it on: refused, nothing applied twice.
            await x2.lock.acquire()
            cu = asyncio.ensure_future(
                svc.catch_up(pb.CatchUpRequest(sessions=[entry("X", [msgs[1].bar], after_seq=1)]))
            )
            await settle()
            x2.lock.release()
            [[moved]] = await run([named("X", msgs[1])])  # before the catch-up gets its turn
            assert moved.WhichOneof("kind") == "update" and x2.last_seq == 2
            answer, _ = await cu
            (refused,) = answer.sessions
            assert refused.error.message == "session at sequence 2, catch-up after 1"
            assert (refused.last_seq, x2.bars) == (2, 2)

    asyncio.run(scenario())


def test_apply_limits_and_undecodable_requests(server: Server, stub: rpc.TradingStub) -> None:
    """A request above server.max_message_bytes: every message refused in-band, nothing applied,
    the stream goes on; an undecodable one ends the stream."""
    replica = rpc.ReplicaStub(server.channel(options=BIG))
    rows = rows_of(BTC)
    list(stub.Stream(iter([open_msg("APBIG")])))
    big = pb.ApplyRequest(messages=[named("APBIG", bar_msg(i + 1, rows[i])) for i in range(1500)])
    big.messages.extend(named("NOPE", bar_msg(i + 1, rows[0])) for i in range(2500))
    size = big.ByteSize()
    assert MAX_BYTES < size < 2 * MAX_BYTES
    small = pb.ApplyRequest(messages=big.messages[:2])
    first, refused, after = list(replica.Apply(iter([small, big, small]), timeout=TIMEOUT))
    assert [a.WhichOneof("kind") for a in first.answers] == ["update", "update"]
    assert len(refused.answers) == len(big.messages)
    message = f"request of {size} bytes exceeds server.max_message_bytes ({MAX_BYTES})"
    for m, a in zip(big.messages, refused.answers, strict=True):
        assert (a.seq, a.engine) == (m.bar.seq, "python")
        assert a.error == pb.StreamError(
            code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message=message
        )
    assert list(after.answers) == list(first.answers), "cached: nothing applied in between"
    snap = stub.GetSnapshot(pb.SnapshotRequest(symbol="APBIG", timeframe="30m"))
    assert snap.last_seq == 2
    line = _wait_for(server, lambda e: e.get("method") == "Apply" and e.get("messages") == 4000)
    assert (line["status"], line["message"]) == ("RESOURCE_EXHAUSTED", message)
    answers: list[pb.ApplyResponse] = []
    raw = server.channel().stream_stream(
        "/trading.v1.Replica/Apply",
        request_serializer=as_is,
        response_deserializer=pb.ApplyResponse.FromString,
    )
    # SessionMessage.bar.seq (field 1 of field 2 of field 1) as fixed64.
    bad = b"\x0a\x0b\x12\x09\x09" + b"\0" * 8
    good = pb.ApplyRequest(messages=big.messages[-1:]).SerializeToString()

    def raw_run() -> None:
        answers.extend(raw(iter([good, bad]), timeout=TIMEOUT))

    f = failure(raw_run)
    assert [len(a.answers) for a in answers] == [1]
    assert (f.code, f.message) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "the request is not a valid trading.v1.ApplyRequest",
    )


def test_apply_is_logged_once_per_request(server: Server, stub: rpc.TradingStub) -> None:
    replica = rpc.ReplicaStub(server.channel())
    rows = rows_of(BTC)
    list(stub.Stream(iter([open_msg("APLOG")])))
    applied = [named("APLOG", bar_msg(i + 1, rows[i])) for i in range(64)]
    requests = [
        pb.ApplyRequest(),
        # One refused in-band among them; then duplicates: the cached answers.
        pb.ApplyRequest(messages=[*applied, named("NOPE", bar_msg(1, rows[0]))]),
        pb.ApplyRequest(messages=applied[-WINDOW:] * 8 + applied[-2:]),
    ]
    counts = [len(r.messages) for r in requests]
    assert counts == [0, 65, 66]  # more than the other tests' requests hold
    assert [len(a.answers) for a in replica.Apply(iter(requests), timeout=TIMEOUT)] == counts
    _wait_for(server, lambda e: e.get("method") == "Apply" and e.get("messages") == 66)
    lines = [e for e in _events(server) if e.get("method") == "Apply"]
    at = [e.get("messages") for e in lines].index(66)
    assert [e["messages"] for e in lines[at - 2 : at + 1]] == counts
    for e in lines[at - 2 : at + 1]:
        assert (e["status"], e["session"], e["seq"]) == ("OK", None, None)
        assert isinstance(e["latency_ms"], float)
    assert not any(e.get("session") == "APLOG/30m" and e["method"] == "Apply" for e in lines)


# ---- config_version, roles ----------------------------------------------------------------------


def test_config_version(stub: rpc.TradingStub) -> None:
    import hashlib

    info = stub.GetInfo(pb.InfoRequest(), timeout=TIMEOUT)
    digest = hashlib.sha256(info.config.SerializeToString(deterministic=True)).hexdigest()[:16]
    assert info.config_version == digest
    assert stub.GetConfig(pb.GetConfigRequest()).config_version == digest
    changed = stub.UpdateConfig(
        pb.UpdateConfigRequest(config=overrides({"macd": {"histogram_scale": 3.0}}))
    )
    assert changed.config_version != digest
    assert (
        changed.config_version
        == (hashlib.sha256(changed.config.SerializeToString(deterministic=True)).hexdigest()[:16])
    )
    back = stub.UpdateConfig(
        pb.UpdateConfigRequest(config=overrides({"macd": {"histogram_scale": 2.0}}))
    )
    assert back.config_version == digest


def test_operator_role(tmp_path: Path) -> None:
    client_file = tmp_path / "client.token"
    client_file.write_text("client-secret\n\t \n", encoding="utf-8")
    operator = "operator-secret"
    s = start(
        "python",
        [f"server.auth_token_file={client_file}", f"server.operator_token={operator}"],
    )
    try:
        stub = rpc.TradingStub(s.channel())
        replica = rpc.ReplicaStub(s.channel())
        as_client = [("authorization", "Bearer client-secret")]
        as_operator = [("authorization", f"bearer {operator}")]
        upd = pb.UpdateConfigRequest()
        close = pb.CloseSessionsRequest()
        for who in (as_client, as_operator):
            assert stub.GetInfo(pb.InfoRequest(), metadata=who).protocol == "trading.v1"
        for call in (
            lambda m: stub.UpdateConfig(upd, metadata=m),
            lambda m: replica.CloseSessions(close, metadata=m),
            lambda m: replica.CatchUp(pb.CatchUpRequest(), metadata=m),
            lambda m: list(replica.Apply(iter([pb.ApplyRequest()]), metadata=m)),
        ):
            f = failure(lambda call=call: call(as_client))
            assert (f.code, f.message) == (
                grpc.StatusCode.PERMISSION_DENIED,
                "operator credential required",
            )
            for m in (None, [("authorization", "Bearer nope")]):
                f = failure(lambda call=call, m=m: call(m))
                assert (f.code, f.message) == (
                    grpc.StatusCode.UNAUTHENTICATED,
                    "missing or invalid bearer token",
                )
            call(as_operator)
        assert all("client-secret" not in line and operator not in line for line in s.log)
    finally:
        assert s.stop() == 0
    # Without an operator token, administrative calls need the client token (single role).
    s = start("python", ["server.auth_token=only"])
    try:
        replica = rpc.ReplicaStub(s.channel())
        f = failure(lambda: replica.CloseSessions(pb.CloseSessionsRequest()))
        assert f.code == grpc.StatusCode.UNAUTHENTICATED
        replica.CloseSessions(
            pb.CloseSessionsRequest(), metadata=[("authorization", "Bearer only")]
        )
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["server.auth_token_file=/nonexistent/token"], "server.auth_token_file: cannot read"),
        (["server.operator_token_file=EMPTY"], "server.operator_token_file: "),
    ],
)
def test_token_files_are_checked(tmp_path: Path, sets: list[str], message: str) -> None:
    empty = tmp_path / "empty"
    empty.write_text(" \n", encoding="utf-8")
    sets = [x.replace("EMPTY", str(empty)) for x in sets]
    args = [sys.executable, "-m", "trading_system", "serve", "python", "--port", "0"]
    for x in sets:
        args += ["--set", x]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 1 and message in done.stderr, done.stderr
    if "EMPTY" not in sets[0]:
        assert "is empty" in done.stderr or "cannot read" in done.stderr


# ---- Limits and messages ------------------------------------------------------------------------


def test_a_thousand_bad_bars(stub: rpc.TradingStub) -> None:
    n = 1000
    t = list(range(0, n * 60_000, 60_000))
    p = [100.0] * n
    r = pb.AnalyzeRequest(bars=pb.Bars(time=t, open=p, high=p, low=p, close=p, volume=[-1.0] * n))
    f = failure(lambda: stub.Analyze(r, timeout=TIMEOUT))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT
    assert f.message.startswith("invalid bars: bar 0: ")
    assert len(f.violations) == 21
    assert (
        f.violations[:2]
        == [
            ("bars[0].volume", "volume_negative: bar 0: volume -1 is negative"),
            ("bars[1].volume", "volume_negative: bar 1: volume -1 is negative"),
        ]
        or f.violations[0][0] == "bars[0].volume"
    )
    assert f.violations[-1] == ("bars", "truncated: 980 more violations not listed")


def _raw_unary(server: Server, method: str) -> grpc.UnaryUnaryMultiCallable[bytes, bytes]:
    return raw_unary(server.channel(), method)


@pytest.mark.parametrize(
    ("method", "name", "data"),
    [
        # AnalyzeRequest field 3 (with_macd, a varint) sent as fixed32.
        ("Analyze", "AnalyzeRequest", pb.AnalyzeRequest().SerializeToString() + b"\x1d\0\0\0\0"),
        # Not protobuf at all.
        ("Analyze", "AnalyzeRequest", b"\xff\xff\xff"),
        # Bars.time (field 1) as fixed64 inside AnalyzeRequest.bars: a wrong type one level down.
        ("Analyze", "AnalyzeRequest", b"\x0a\x09\x09" + b"\0" * 8),
        # SnapshotRequest.symbol (field 1, a string) as a varint.
        ("GetSnapshot", "SnapshotRequest", b"\x08\x01"),
        # A bar's time inside a catch-up entry, three levels down, as fixed32.
        ("CatchUp", "CatchUpRequest", b"\x0a\x09\x22\x07\x12\x05\x0d\0\0\0\0"),
    ],
    ids=["wire-type", "garbage", "nested", "snapshot", "catch-up"],
)
def test_undecodable_requests(server: Server, method: str, name: str, data: bytes) -> None:
    service = "Replica" if method == "CatchUp" else "Trading"
    call = _raw_unary(server, f"/trading.v1.{service}/{method}")
    f = failure(lambda: call(data, timeout=TIMEOUT))
    assert (f.code, f.message) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        f"the request is not a valid trading.v1.{name}",
    )


def test_unknown_field_numbers_are_not_errors(server: Server) -> None:
    call = _raw_unary(server, "/trading.v1.Trading/GetSnapshot")
    known = pb.SnapshotRequest(symbol="NOSUCH", timeframe="1m").SerializeToString()
    f = failure(lambda: call(known + b"\xf8\x07\x01", timeout=TIMEOUT))  # field 127, a varint
    assert (f.code, f.message) == (grpc.StatusCode.NOT_FOUND, "session NOSUCH/1m not found")


def test_an_undecodable_stream_message_ends_the_stream(server: Server) -> None:
    raw = server.channel().stream_stream(
        "/trading.v1.Trading/Stream",
        request_serializer=as_is,
        response_deserializer=pb.StreamResponse.FromString,
    )
    # BarMessage.seq (field 1 of field 2) as fixed64.
    bad = b"\x12\x09\x09" + b"\0" * 8
    answers: list[Any] = []

    def run() -> None:
        answers.extend(raw(iter([open_msg("UNDEC").SerializeToString(), bad]), timeout=TIMEOUT))

    f = failure(run)
    assert answers[0].opened.session == "UNDEC/30m"
    assert (f.code, f.message) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "the request is not a valid trading.v1.StreamRequest",
    )


def test_identifiers_are_shown_by_one_rule(server: Server, stub: rpc.TradingStub) -> None:
    smiley = 'BTC\U0001f600"\\\x07'
    f = failure(lambda: list(stub.Stream(iter([open_msg(smiley)]), timeout=TIMEOUT)))
    shown = "BTC\\u{1f600}\\u{22}\\u{5c}\\u{7}"
    assert f.message == (
        f'invalid session name: open.symbol: symbol "{shown}" must be 1 to 64 characters of '
        "A-Z a-z 0-9 . _ : / -"
    )
    long = "X" * 65
    f = failure(lambda: stub.GetSnapshot(pb.SnapshotRequest(symbol=long, timeframe="1m")))
    assert f.violations == [
        (
            "symbol",
            f'symbol "{"X" * 32}... (65 characters)" must be 1 to 64 characters of '
            "A-Z a-z 0-9 . _ : / -",
        )
    ]


def test_a_10_mb_symbol_is_refused_quickly_and_quietly() -> None:
    s = start("python")
    try:
        stub = rpc.TradingStub(s.channel(options=BIG))
        huge = "\U0001f600" * (10 * 2**20 // 4)
        f = failure(lambda: stub.GetSnapshot(pb.SnapshotRequest(symbol=huge, timeframe="1m")))
        assert f.code == grpc.StatusCode.INVALID_ARGUMENT and len(f.message) < 600
        assert f"... ({len(huge)} characters)" in f.message
        f = failure(lambda: list(stub.Stream(iter([open_msg(huge)]), timeout=TIMEOUT)))
        assert f.code == grpc.StatusCode.INVALID_ARGUMENT and len(f.message) < 600
        replica = rpc.ReplicaStub(s.channel(options=BIG))
        (got,) = replica.CatchUp(
            pb.CatchUpRequest(sessions=[entry(huge, [], fresh=True)]), timeout=TIMEOUT
        ).sessions
        assert got.session == "\\u{1f600}" * 32 + f"... ({len(huge)} characters)/30m"
        assert got.error.field_violations[0].field == "open.symbol"
        # The server still answers at once, and its log holds short lines only.
        assert stub.GetInfo(pb.InfoRequest(), timeout=5).sessions == 0
        _wait_for(s, lambda e: e.get("method") == "GetInfo")
        assert max(len(x) for x in list(s.log)) < 2000
    finally:
        assert s.stop() == 0
