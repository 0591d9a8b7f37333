"""One conformance suite against both engine servers (docs/GRPC.md): real processes on loopback
ports, the same requests, and identical answers except the ``engine`` field (and uptime) —
batch, streams with appends, replacements, duplicates, gaps, resumes, every error case, health,
info and configuration. An error is compared by its structure — status code, violated field,
rule and bar index, configuration key — not by its message, which is each engine's own text
(but for user text echoed by the shared display rule, checked on both)."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from typing import Any, cast

import grpc
import pytest
from golden import GOLDEN, bars_of, cases
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status
from servers import Server, start
from typed import Health, as_is, raw_unary

from trading_system import convert
from trading_system.data import Bars, load_csv
from trading_system.proto import trading_pb2 as pb
from trading_system.proto import trading_pb2_grpc as rpc

ENGINES = tuple(os.environ.get("CONFORMANCE_ENGINES", "rust,python").split(","))
"""The servers compared (``CONFORMANCE_ENGINES=python`` runs the suite against one alone, e.g.
while the other is being changed; every answer is then checked for its own assertions only)."""
SETS = ["server.max_message_bytes=2000000", "server.replay_window=64"]
BTC = GOLDEN.parent / "data" / "BTCUSD-BITSTAMP_30m.csv"


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Server]]:
    started = {e: start(e, SETS) for e in ENGINES}
    try:
        yield started
    finally:
        for s in started.values():
            assert s.stop() == 0, f"{s.engine} server did not stop cleanly"


@pytest.fixture(scope="module")
def stubs(servers: dict[str, Server]) -> dict[str, rpc.TradingStub]:
    return {e: rpc.TradingStub(s.channel()) for e, s in servers.items()}


def outcome(fn: Callable[[], Any]) -> Any:
    """An answer as comparable data: the message as a dict without ``engine``, or the error's
    code, message and BadRequest violations."""
    try:
        answer = fn()
    except grpc.RpcError as e:
        status = rpc_status.from_call(e)  # type: ignore[arg-type]
        violations = []
        for d in status.details if status else []:
            br = error_details_pb2.BadRequest()
            if d.Unpack(br):
                violations += [(v.field, v.description) for v in br.field_violations]
        return {"code": e.code().name, "message": e.details(), "violations": violations}
    if isinstance(answer, list):
        return [strip(m) for m in answer]
    return strip(answer)


def strip(m: Any) -> Any:
    d = json_format.MessageToDict(m, preserving_proto_field_name=True)
    d.pop("engine", None)
    d.pop("uptime_ms", None)
    return d  # JSON-safe already: NaN is the string "NaN", 64-bit integers are strings


RULE = re.compile(r"([a-z_]+): ")
"""A bar violation's description: its rule's stable name (docs/CHAN_THEORY.md §12.1), then text."""


def structure(answer: Any) -> Any:
    """What both engines must answer alike: the answer less its free text. A message goes; a
    violation keeps its field (``config.macd.fast_period``, ``bars[3].high``), its bar index and
    its rule (the ``reason`` of a stream's violation; the head of a BadRequest description on a
    ``bars`` field)."""
    if isinstance(answer, dict):
        return {k: structure(v) for k, v in answer.items() if k not in ("message", "description")}
    if isinstance(answer, list):
        return [structure(v) for v in answer]
    if isinstance(answer, tuple):  # a BadRequest violation: (field, description)
        field, description = answer
        rule = RULE.match(description) if field.startswith("bars") else None
        return (field, rule.group(1) if rule else None)
    return answer


def each(stubs: dict[str, Any], call: Callable[[Any], Any]) -> dict[str, Any]:
    """``call``'s outcome on every server."""
    return {e: outcome(lambda e=e: call(stubs[e])) for e in ENGINES}


def same(stubs: dict[str, Any], call: Callable[[Any], Any]) -> Any:
    """Runs ``call`` on both servers and asserts outcomes of the same structure
    (:func:`structure`); returns the first engine's (Rust's) outcome, messages included."""
    got = each(stubs, call)
    first = got[ENGINES[0]]
    for e in ENGINES[1:]:
        assert structure(got[e]) == structure(first), f"{ENGINES[0]} and {e} differ"
    return first


def request(bars: Bars, config: dict[str, Any] | None = None, with_macd: bool = False) -> Any:
    cfg = json_format.ParseDict(config or {}, pb.EngineConfig())
    return pb.AnalyzeRequest(
        bars=convert.bars_message(bars),
        config=cfg,
        with_macd=with_macd,
    )


# ---- Analyze ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"pen": {"definition": "traditional"}},
        {"macd": {"seed": "sma", "fast_period": 5}, "signal": {"strength": "peak"}},
    ],
)
def test_analyze_real_series(stubs: dict[str, rpc.TradingStub], config: dict[str, Any]) -> None:
    bars = load_csv(BTC)
    answer = same(stubs, lambda s: s.Analyze(request(bars, config, with_macd=True)))
    a = answer["analysis"]
    assert int(a["bars"]) == len(bars)
    assert a["pens"] and a["segments"]
    assert len(a["macd"]["dif"]) == len(bars)


ERROR_CASES = [(n, c) for n, c in cases() if "expected_error" in c]


@pytest.mark.parametrize(("name", "case"), ERROR_CASES, ids=[n for n, _ in ERROR_CASES])
def test_every_bad_bar_rule(stubs: dict[str, rpc.TradingStub], name: str, case: Any) -> None:
    answer = same(stubs, lambda s: s.Analyze(request(bars_of(case), case.get("config"))))
    assert answer["code"] == "INVALID_ARGUMENT"
    want = [
        (
            "bars" if v["index"] is None else f"bars[{v['index']}].{v['field']}",
            f"{v['rule']}: {v['message']}",
        )
        for v in case["expected_error"]
    ]
    assert answer["violations"] == want


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"macd": {"fast_period": 40}}, "config.macd.fast_period"),
        ({"macd": {"signal_period": 0}}, "config.macd.signal_period"),
        ({"macd": {"histogram_scale": "NaN"}}, "config.macd.histogram_scale"),
        ({"macd": {"seed": "median"}}, "config.macd.seed"),
        ({"pen": {"definition": "old"}}, "config.pen.definition"),
        ({"signal": {"strength": "Area"}}, "config.signal.strength"),
        ({"signal": {"divergence_rate": 0}}, "config.signal.divergence_rate"),
    ],
)
def test_bad_configuration_names_the_key(
    stubs: dict[str, rpc.TradingStub], config: dict[str, Any], field: str
) -> None:
    """A refused configuration names the same key on both engines, in a batch and on a stream's
    open (the messages are each engine's own)."""
    bars = load_csv(BTC)
    batch = same(stubs, lambda s: s.Analyze(request(bars, config)))
    assert (batch["code"], [f for f, _ in batch["violations"]]) == ("INVALID_ARGUMENT", [field])
    opened = same(stubs, lambda s: converse(s, [open_msg("CFG", **config)]))
    assert (opened["code"], [f for f, _ in opened["violations"]]) == ("INVALID_ARGUMENT", [field])


def test_bad_configuration_and_columns(stubs: dict[str, rpc.TradingStub]) -> None:
    bars = load_csv(BTC)
    bad_cfg = same(stubs, lambda s: s.Analyze(request(bars, {"macd": {"fast_period": 40}})))
    assert bad_cfg["code"] == "INVALID_ARGUMENT"
    assert bad_cfg["violations"][0][0].startswith("config.macd.")
    bad_seed = same(stubs, lambda s: s.Analyze(request(bars, {"macd": {"seed": "median"}})))
    assert bad_seed["violations"][0][0] == "config.macd.seed"
    r = request(bars)
    del r.bars.close[-1]
    short = same(stubs, lambda s: s.Analyze(r))
    assert short["code"] == "INVALID_ARGUMENT"
    assert short["violations"][0][0] == "bars.close"


def test_oversize_request(stubs: dict[str, rpc.TradingStub]) -> None:
    n = 60_000  # about 2.9 MB: above the 2 MB limit, below the transport's 4 MB
    t = list(range(0, n * 60_000, 60_000))
    p = [100.0 + (i % 7) for i in range(n)]
    r = pb.AnalyzeRequest(bars=pb.Bars(time=t, open=p, high=p, low=p, close=p, volume=p))
    answer = same(stubs, lambda s: s.Analyze(r))
    assert answer["code"] == "RESOURCE_EXHAUSTED"
    assert "exceeds server.max_message_bytes (2000000)" in answer["message"]


# ---- Streams ----------------------------------------------------------------------------------


def open_msg(symbol: str, resume: bool = False, **config: Any) -> Any:
    return pb.StreamRequest(
        open=pb.OpenSession(
            symbol=symbol,
            timeframe="30m",
            resume=resume,
            config=json_format.ParseDict(config, pb.EngineConfig()),
        )
    )


def bar_msg(seq: int, row: tuple[Any, ...], replace: bool = False) -> Any:
    t, o, h, lo, c, v = row
    op = pb.REPLACE_LAST if replace else pb.APPEND
    return pb.StreamRequest(
        bar=pb.BarMessage(
            seq=seq, op=op, bar=pb.Bar(time=t, open=o, high=h, low=lo, close=c, volume=v)
        )
    )


def converse(stub: rpc.TradingStub, messages: list[Any]) -> list[Any]:
    """Sends the messages one at a time, each after the previous answer (a real conversation)."""
    return list(stub.Stream(iter(messages)))


def script(symbol: str, rows: list[tuple[Any, ...]]) -> list[Any]:
    """A stream with every case: appends, a provisional bar replaced, a duplicate with the same
    payload, one with another payload, a gap, seq 0, bad bars (not consuming their number), a
    replacement that is bad."""
    m = [open_msg(symbol)]
    seq = 0
    for i, row in enumerate(rows[:60]):
        seq += 1
        t, o, h, lo, c, v = row
        if i % 5 == 0:
            m.append(bar_msg(seq, (t, o, o, o, o, 0.0)))
            seq += 1
            m.append(bar_msg(seq, row, replace=True))
        else:
            m.append(bar_msg(seq, row))
    last = rows[59]
    m += [
        bar_msg(seq, last),  # duplicate, same payload: the cached answer
        bar_msg(seq, (last[0], last[1], last[2] + 1, last[3], last[4], last[5])),  # ABORTED
        bar_msg(seq + 5, rows[60]),  # gap
        bar_msg(0, rows[60]),  # zero
        bar_msg(seq + 1, (rows[60][0], math.nan, *rows[60][2:])),  # bad bar, number kept
        bar_msg(seq + 1, (last[0], *rows[60][1:])),  # duplicate time
        bar_msg(seq + 1, rows[60]),  # now fine
        bar_msg(seq + 2, (rows[60][0], rows[60][1], 1.0, 2.0, rows[60][4], 1.0), replace=True),
    ]
    return m


def test_stream_every_case(stubs: dict[str, rpc.TradingStub]) -> None:
    rows = list(load_csv(BTC).rows())
    answers = same(stubs, lambda s: converse(s, script("BTCUSD", rows)))
    kinds = [next(k for k in ("opened", "update", "error") if k in a) for a in answers]
    assert kinds[0] == "opened"
    errors = [a for a in answers if "error" in a]
    codes = [a["error"]["code"] for a in errors]
    # ABORTED = 10, FAILED_PRECONDITION = 9, INVALID_ARGUMENT = 3 (google.rpc.Code)
    assert codes == [10, 9, 9, 3, 3, 3]
    dup = answers[-8]
    assert dup == answers[-9], "a duplicate gets the cached answer"
    snap = same(
        stubs, lambda s: s.GetSnapshot(pb.SnapshotRequest(symbol="BTCUSD", timeframe="30m"))
    )
    assert int(snap["analysis"]["bars"]) == 61
    b = load_csv(BTC)
    first61 = Bars(b.time[:61], b.open[:61], b.high[:61], b.low[:61], b.close[:61], b.volume[:61])
    whole = same(stubs, lambda s: s.Analyze(request(first61)))
    assert snap["analysis"] == whole["analysis"]


def test_stream_reports_every_degree(stubs: dict[str, rpc.TradingStub]) -> None:
    """A whole real series streamed with three degrees, each bar first provisional then
    replaced: both engines answer every message alike, every answer reports each higher degree,
    and the degrees rebuilt from the answers alone equal the snapshot's (§12.7, §13)."""
    rows = list(load_csv(BTC).rows())
    m = [open_msg("BTCDEG", structure={"degrees": 3})]
    for i, (t, o, h, lo, c, v) in enumerate(rows):
        m.append(bar_msg(2 * i + 1, (t, o, o, o, o, 0.0)))
        m.append(bar_msg(2 * i + 2, (t, o, h, lo, c, v), replace=True))
    answers = same(stubs, lambda s: converse(s, m))
    updates = [a["update"] for a in answers[1:]]
    assert len(updates) == 2 * len(rows)
    kept: dict[int, dict[str, list[Any]]] = {}
    tails: dict[int, dict[str, list[Any]]] = {}
    for u in updates:
        assert [int(d.get("degree", 0)) for d in u["degrees"]] == [2, 3]
        for d in u["degrees"]:
            n = int(d["degree"])
            finals = kept.setdefault(n, {k: [] for k in ("segments", "pivots", "signals")})
            for k in finals:
                splice = d.get(k, {})
                del finals[k][int(splice.get("from", 0)) :]
                finals[k].extend(splice.get("items", []))
            if "tail" in d:
                tails[n] = {k: d["tail"].get(k, []) for k in finals}
    snap = same(
        stubs, lambda s: s.GetSnapshot(pb.SnapshotRequest(symbol="BTCDEG", timeframe="30m"))
    )
    degrees = snap["analysis"]["degrees"]
    assert [int(d["degree"]) for d in degrees] == [2, 3]
    for d in degrees:
        n = int(d["degree"])
        for k in ("segments", "pivots", "signals"):
            rebuilt = kept[n][k] + tails.get(n, {}).get(k, [])
            assert rebuilt == d.get(k, []), f"degree {n} {k}"
    # The series makes a real degree 2: segments, a pivot and a point, built bar by bar.
    d2 = degrees[0]
    assert len(d2["segments"]) >= 2 and d2.get("pivots") and d2.get("signals")


def test_resume_after_reconnect(stubs: dict[str, rpc.TradingStub]) -> None:
    rows = list(load_csv(BTC).rows())
    first = [open_msg("ETHUSD")] + [bar_msg(i + 1, r) for i, r in enumerate(rows[:30])]
    same(stubs, lambda s: converse(s, first))
    again = [open_msg("ETHUSD", resume=True)] + [
        bar_msg(i + 1, r) for i, r in enumerate(rows[25:50], start=25)
    ]
    answers = same(stubs, lambda s: converse(s, again))
    assert answers[0]["opened"]["last_seq"] == "30"
    assert answers[0]["opened"]["resumed"] is True
    assert all("update" in a for a in answers[1:])
    missing = same(stubs, lambda s: converse(s, [open_msg("NOPE", resume=True)]))
    assert missing["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "first",
    [
        [bar_msg(1, (0, 1.0, 1.0, 1.0, 1.0, 0.0))],
        [open_msg("BTCUSD"), open_msg("BTCUSD")],
        [open_msg("bad symbol!")],
        [pb.StreamRequest(open=pb.OpenSession(symbol="BTCUSD", timeframe="7x"))],
        [pb.StreamRequest(open=pb.OpenSession(symbol="BTCUSD", timeframe="1é"))],
        [pb.StreamRequest(open=pb.OpenSession(symbol="BTCUSDé", timeframe="1m"))],
    ],
    ids=["bar-first", "open-twice", "bad-symbol", "bad-timeframe", "non-ascii-unit", "non-ascii"],
)
def test_bad_opens(stubs: dict[str, rpc.TradingStub], first: list[Any]) -> None:
    answer = same(stubs, lambda s: converse(s, first))
    code = answer["code"] if isinstance(answer, dict) else None
    assert code == "INVALID_ARGUMENT"


# ---- Info, configuration, health ---------------------------------------------------------------


def test_info_and_config(stubs: dict[str, rpc.TradingStub]) -> None:
    info = same(stubs, lambda s: s.GetInfo(pb.InfoRequest()))
    assert info["protocol"] == "trading.v1"
    assert info["config_version"] == version_of(info["config"])
    got = same(stubs, lambda s: s.GetConfig(pb.GetConfigRequest()))
    assert got["config_version"] == info["config_version"]
    rows = list(load_csv(BTC).rows())
    same(stubs, lambda s: converse(s, [open_msg("CFG"), bar_msg(1, rows[0])]))
    upd = pb.UpdateConfigRequest(config=pb.EngineConfig(pen=pb.PenConfig(definition="traditional")))
    changed = same(stubs, lambda s: s.UpdateConfig(upd))
    assert changed["config"]["pen"]["definition"] == "traditional"
    assert changed["config_version"] == version_of(changed["config"]) != info["config_version"]
    bad = pb.UpdateConfigRequest(config=pb.EngineConfig(macd=pb.MacdConfig(slow_period=2)))
    assert same(stubs, lambda s: s.UpdateConfig(bad))["code"] == "INVALID_ARGUMENT"
    # The running session keeps the configuration it was opened with.
    resumed = same(stubs, lambda s: converse(s, [open_msg("CFG", resume=True)]))
    assert resumed[0]["opened"]["config"]["pen"]["definition"] == "new_3kline"
    restore = pb.UpdateConfigRequest(
        config=pb.EngineConfig(pen=pb.PenConfig(definition="new_3kline"))
    )
    same(stubs, lambda s: s.UpdateConfig(restore))


def version_of(config: dict[str, Any]) -> str:
    """The contract's config_version of a configuration in an answer (as data)."""
    msg = json_format.ParseDict(config, pb.EngineConfig())
    return hashlib.sha256(msg.SerializeToString(deterministic=True)).hexdigest()[:16]


def test_health(servers: dict[str, Server]) -> None:
    def check(s: Server, service: str) -> Any:
        stub = Health(s.channel())
        return outcome(lambda: stub.Check(health_pb2.HealthCheckRequest(service=service)))

    def watch_first(s: Server, service: str) -> Any:
        stub = Health(s.channel())
        call = stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=10)
        first = next(iter(call))
        call.cancel()
        return strip(first)

    for service in ("", "trading.v1.Trading", "no.such.Service"):
        got = [check(s, service) for s in servers.values()]
        assert all(x == got[0] for x in got)
        got = [watch_first(s, service) for s in servers.values()]
        assert all(x == got[0] for x in got)
    one = servers[ENGINES[0]]
    assert watch_first(one, "no.such.Service") == {"status": "SERVICE_UNKNOWN"}
    assert check(one, "")["status"] == "SERVING"


def test_authentication() -> None:
    token = "s3cret-token"
    started = {e: start(e, [f"server.auth_token={token}"]) for e in ENGINES}
    try:
        stubs = {e: rpc.TradingStub(s.channel()) for e, s in started.items()}
        denied = same(stubs, lambda s: s.GetInfo(pb.InfoRequest()))
        assert denied["code"] == "UNAUTHENTICATED"
        wrong = same(
            stubs, lambda s: s.GetInfo(pb.InfoRequest(), metadata=[("authorization", "Bearer x")])
        )
        assert wrong["code"] == "UNAUTHENTICATED"
        ok = same(
            stubs,
            lambda s: s.GetInfo(pb.InfoRequest(), metadata=[("authorization", f"Bearer {token}")]),
        )
        assert ok["protocol"] == "trading.v1"
        for s in started.values():  # health needs no token
            stub = Health(s.channel())
            assert stub.Check(health_pb2.HealthCheckRequest()).status == 1
    finally:
        for s in started.values():
            s.stop()


def test_one_json_log_line_per_call(
    servers: dict[str, Server], stubs: dict[str, rpc.TradingStub]
) -> None:
    rows = list(load_csv(BTC).rows())
    same(stubs, lambda s: converse(s, [open_msg("LOG"), bar_msg(1, rows[0]), bar_msg(3, rows[1])]))
    same(stubs, lambda s: s.GetInfo(pb.InfoRequest()))
    for s in servers.values():
        lines = [json.loads(x) for x in list(s.log) if x.startswith("{")]
        calls = [x for x in lines if x.get("method")]
        assert calls, f"{s.engine}: no call logged"
        for x in calls:
            assert {"ts", "level", "engine", "method", "status", "latency_ms"} <= set(x), x
        bars = [x for x in calls if x.get("session") == "LOG/30m" and x.get("seq") in (1, 3)]
        assert [x["seq"] for x in bars] == [1, 3], f"{s.engine}: {bars}"
        assert any(x["method"].endswith("GetInfo") and x["status"] == "OK" for x in calls)


# ---- Replica: CatchUp and CloseSessions --------------------------------------------------------


@pytest.fixture(scope="module")
def replicas(servers: dict[str, Server]) -> dict[str, rpc.ReplicaStub]:
    return {e: rpc.ReplicaStub(s.channel()) for e, s in servers.items()}


def catch_up(*entries: Any) -> Any:
    return pb.CatchUpRequest(sessions=list(entries))


def entry(symbol: str, bars: list[Any], fresh: bool = False, after_seq: int = 0, **kw: Any) -> Any:
    config = kw.pop("config", {})
    return pb.SessionCatchUp(
        open=pb.OpenSession(
            symbol=symbol,
            timeframe=kw.pop("timeframe", "30m"),
            config=json_format.ParseDict(config, pb.EngineConfig()),
            **kw,
        ),
        fresh=fresh,
        after_seq=after_seq,
        bars=bars,
    )


def journaled(rows: list[tuple[Any, ...]]) -> list[Any]:
    """Bar messages with provisional bars replaced, as a stream sends them (numbers 1, 2, ...)."""
    out = []
    seq = 0
    for i, (t, o, h, lo, c, v) in enumerate(rows):
        if i % 3 == 0:
            seq += 1
            out.append(bar_msg(seq, (t, o, o, o, o, -0.0)).bar)
            seq += 1
            out.append(bar_msg(seq, (t, o, h, lo, c, v), replace=True).bar)
        else:
            seq += 1
            out.append(bar_msg(seq, (t, o, h, lo, c, v)).bar)
    return out


def test_catch_up_fresh_and_continued(
    stubs: dict[str, rpc.TradingStub], replicas: dict[str, rpc.ReplicaStub]
) -> None:
    rows = list(load_csv(BTC).rows())
    bars = journaled(rows[:300])
    cfg: dict[str, Any] = {"macd": {"fast_period": 6}}
    first = same(
        replicas,
        lambda r: r.CatchUp(catch_up(entry("CU", bars[:150], True, config=cfg, with_macd=True))),
    )
    (one,) = first["sessions"]
    assert (one["session"], one["last_seq"], "error" in one) == ("CU/30m", "150", False)
    more = same(replicas, lambda r: r.CatchUp(catch_up(entry("CU", bars[150:], after_seq=150))))
    assert more["sessions"][0]["last_seq"] == str(len(bars))
    snap = same(stubs, lambda s: s.GetSnapshot(pb.SnapshotRequest(symbol="CU", timeframe="30m")))
    assert snap["last_seq"] == str(len(bars))
    # Equal to streaming the same messages.
    streamed = [open_msg("CUS", **cfg)] + [pb.StreamRequest(bar=b) for b in bars]
    streamed[0].open.with_macd = True
    same(stubs, lambda s: converse(s, streamed))
    other = same(stubs, lambda s: s.GetSnapshot(pb.SnapshotRequest(symbol="CUS", timeframe="30m")))
    assert other["analysis"] == snap["analysis"]
    # A stream resuming it: a caught-up number is out of sequence, the next one applies.
    n = len(bars)
    answers = same(
        stubs,
        lambda s: converse(
            s,
            [
                open_msg("CU", resume=True),
                pb.StreamRequest(bar=bars[-1]),
                bar_msg(n + 1, rows[300]),
            ],
        ),
    )
    assert answers[1]["error"]["code"] == 9 and answers[1]["error"]["expected_seq"] == str(n + 1)
    assert "update" in answers[2]


def test_catch_up_refusals(
    stubs: dict[str, rpc.TradingStub], replicas: dict[str, rpc.ReplicaStub]
) -> None:
    rows = list(load_csv(BTC).rows())
    bars = journaled(rows[:60])
    same(replicas, lambda r: r.CatchUp(catch_up(entry("CUR", bars[:30], True))))
    before = same(stubs, lambda s: s.GetSnapshot(pb.SnapshotRequest(symbol="CUR", timeframe="30m")))
    bad = bar_msg(33, (rows[59][0], -1.0, *rows[59][2:])).bar
    gap = bar_msg(40, rows[59]).bar
    no_bar = pb.BarMessage(seq=31, op=pb.APPEND)
    bad_op = pb.BarMessage(seq=31, op=cast(pb.Op, 5), bar=bars[30].bar)  # not in the contract
    replace_empty = bar_msg(1, rows[0], replace=True).bar
    many = [bar_msg(31 + i, (rows[59][0] + i, -1.0, *rows[59][2:])).bar for i in range(30)]
    entries = [
        entry("CUR", bars[30:], after_seq=29),  # behind
        entry("CUR", bars[30:], after_seq=31),  # ahead
        entry("NOPE", bars[30:], after_seq=30),  # unknown
        entry("CUR", bars[30:], fresh=True, after_seq=30),  # fresh with a number
        entry("CUR", bars[:5], fresh=True, config={"macd": {"fast_period": 40}}),
        entry("CUR", bars[30:32] + [bad] + bars[33:], after_seq=30),  # a bad bar
        entry("CUR", bars[30:32] + [gap], after_seq=30),  # a gap
        entry("CUR", [no_bar], after_seq=30),
        entry("CUR", [bad_op], after_seq=30),
        entry("CUE", [replace_empty], fresh=True),
        entry("CUR", many[:1], after_seq=30),
        entry("bad symbol!", bars[:3], fresh=True),
        entry("CUR", bars[:3], fresh=True, timeframe="7x"),
    ]
    got = same(replicas, lambda r: r.CatchUp(catch_up(*entries)))
    answers = got["sessions"]
    assert len(answers) == len(entries)
    assert all("error" in a for a in answers)
    codes = [a["error"]["code"] for a in answers]
    # FAILED_PRECONDITION 9, NOT_FOUND 5, INVALID_ARGUMENT 3
    assert codes == [9, 9, 5, 3, 3, 3, 3, 3, 3, 9, 3, 3, 3]
    assert answers[0]["error"]["message"] == "session at sequence 30, catch-up after 29"
    assert answers[0]["error"]["expected_seq"] == "31"
    assert answers[6]["error"]["field_violations"] == [
        {
            "field": "bars[2].seq",
            "description": "seq_order: expected sequence 33, got 40",
            "reason": "seq_order",
            "index": "-1",
        }
    ]
    assert answers[3]["error"]["field_violations"][0]["field"] == "after_seq"
    assert answers[11]["session"] == "bad symbol!/30m"
    after = same(stubs, lambda s: s.GetSnapshot(pb.SnapshotRequest(symbol="CUR", timeframe="30m")))
    assert after == before, "a refused entry changes nothing"


def collapsed(bars: list[Any]) -> list[tuple[Any, ...]]:
    """Journaled bar messages with every append and replacement applied (a checkpoint)."""
    out: list[tuple[Any, ...]] = []
    for m in bars:
        b = m.bar
        row = (b.time, b.open, b.high, b.low, b.close, b.volume)
        if m.op == pb.REPLACE_LAST:
            out[-1] = row
        else:
            out.append(row)
    return out


def base_of(rows: list[tuple[Any, ...]]) -> Any:
    cols = list(zip(*rows, strict=True))
    return pb.Bars(
        time=cols[0], open=cols[1], high=cols[2], low=cols[3], close=cols[4], volume=cols[5]
    )


def numbered(bars: list[Any], first: int) -> list[Any]:
    out = []
    for k, b in enumerate(bars):
        m = pb.BarMessage()
        m.CopyFrom(b)
        m.seq = first + k
        out.append(m)
    return out


def test_catch_up_fresh_with_base(
    stubs: dict[str, rpc.TradingStub], replicas: dict[str, rpc.ReplicaStub]
) -> None:
    """A fresh session from a base standing at after_seq, then messages: the snapshot a stream
    of the base as appends then the messages gives (but last_seq), and the same answer to a
    replacement of the last bar."""
    rows = list(load_csv(BTC).rows())
    bars = journaled(rows[:260])
    cut = next(k for k in range(150, len(bars)) if bars[k].op == pb.REPLACE_LAST)
    base = collapsed(bars[:cut])
    after = 10_000
    cfg = {"macd": {"fast_period": 7}, "validation": {"repair": True}}
    e = entry("CUB", numbered(bars[cut:], after + 1), True, after, config=cfg, with_macd=True)
    e.base.CopyFrom(base_of(base))
    got = same(replicas, lambda r: r.CatchUp(catch_up(e)))
    (one,) = got["sessions"]
    n = len(collapsed(bars))
    assert "error" not in one
    assert (one["session"], one["last_seq"], one["bars"]) == (
        "CUB/30m",
        str(after + len(bars) - cut),
        str(n),
    )
    streamed = [open_msg("CUBS", **cfg)]
    streamed[0].open.with_macd = True
    streamed += [bar_msg(k + 1, r) for k, r in enumerate(base)]
    streamed += [pb.StreamRequest(bar=b) for b in numbered(bars[cut:], len(base) + 1)]
    same(stubs, lambda s: converse(s, streamed))
    snaps = {
        name: same(
            stubs, lambda s, n=name: s.GetSnapshot(pb.SnapshotRequest(symbol=n, timeframe="30m"))
        )
        for name in ("CUB", "CUBS")
    }
    assert snaps["CUB"]["last_seq"] == str(after + len(bars) - cut)
    assert snaps["CUB"]["analysis"] == snaps["CUBS"]["analysis"]
    # The next message, a replacement of the last bar, is answered alike.
    t, o, _, _, _, v = collapsed(bars)[-1]
    moved = (t, o, o * 1.01, o * 0.99, o * 0.99, v)
    answers = {
        name: same(
            stubs,
            lambda s, name=name, seq=seq: converse(
                s, [open_msg(name, resume=True), bar_msg(seq, moved, replace=True)]
            ),
        )
        for name, seq in (("CUB", after + len(bars) - cut + 1), ("CUBS", len(streamed)))
    }
    assert "update" in answers["CUB"][1]
    assert answers["CUB"][1]["update"] == answers["CUBS"][1]["update"]
    snaps = {
        name: same(
            stubs, lambda s, n=name: s.GetSnapshot(pb.SnapshotRequest(symbol=n, timeframe="30m"))
        )
        for name in ("CUB", "CUBS")
    }
    assert snaps["CUB"]["analysis"] == snaps["CUBS"]["analysis"]


def test_catch_up_base_on_a_session_not_fresh(
    stubs: dict[str, rpc.TradingStub], replicas: dict[str, rpc.ReplicaStub]
) -> None:
    rows = list(load_csv(BTC).rows())
    bars = journaled(rows[:20])
    same(replicas, lambda r: r.CatchUp(catch_up(entry("CUNF", bars[:10], True))))
    before = same(
        stubs, lambda s: s.GetSnapshot(pb.SnapshotRequest(symbol="CUNF", timeframe="30m"))
    )
    entries = [entry(symbol, bars[10:], after_seq=10) for symbol in ("CUNF", "CUNONE")]
    for e in entries:
        e.base.CopyFrom(base_of(rows[:3]))
    got = same(replicas, lambda r: r.CatchUp(catch_up(*entries)))
    message = "invalid catch-up: base is only for a fresh session"
    for answer in got["sessions"]:
        assert answer["error"]["code"] == 3
        assert answer["error"]["message"] == message
        assert answer["error"]["field_violations"] == [
            {"field": "base", "description": message, "index": "-1"}
        ]
    assert got["sessions"][0]["last_seq"] == "10"
    after = same(stubs, lambda s: s.GetSnapshot(pb.SnapshotRequest(symbol="CUNF", timeframe="30m")))
    assert after == before


def test_catch_up_base_columns_of_different_lengths(
    replicas: dict[str, rpc.ReplicaStub],
) -> None:
    rows = list(load_csv(BTC).rows())
    e = entry("CUMC", numbered(journaled(rows[5:7]), 6), True, 5)
    e.base.CopyFrom(base_of(rows[:5]))
    del e.base.high[-1]
    got = same(replicas, lambda r: r.CatchUp(catch_up(e)))
    (answer,) = got["sessions"]
    assert answer["error"]["code"] == 3
    assert answer["error"]["message"] == (
        "invalid bars: columns of different lengths: base.high has 4 values, base.time has 5"
    )
    assert answer["error"]["field_violations"] == [
        {"field": "base.high", "description": "has 4 values, base.time has 5", "index": "-1"}
    ]
    assert "last_seq" not in answer


def test_close_sessions(
    stubs: dict[str, rpc.TradingStub], replicas: dict[str, rpc.ReplicaStub]
) -> None:
    rows = list(load_csv(BTC).rows())
    same(replicas, lambda r: r.CatchUp(catch_up(entry("CL1", [], True), entry("CL2", [], True))))
    names = [pb.SessionName(symbol=s, timeframe="30m") for s in ("CL1", "CL2", "CL3", "CL1")]
    got = same(replicas, lambda r: r.CloseSessions(pb.CloseSessionsRequest(sessions=names)))
    assert got["closed"] == 2
    gone = same(stubs, lambda s: converse(s, [open_msg("CL1", resume=True)]))
    assert gone["code"] == "NOT_FOUND"
    same(stubs, lambda s: converse(s, [open_msg("CL4"), bar_msg(1, rows[0])]))


# ---- Replica: Apply ----------------------------------------------------------------------------


def applied(target: tuple[str, rpc.ReplicaStub], requests: list[Any]) -> list[Any]:
    """Apply's answers to ``requests`` (on one stream), each StreamResponse's ``engine`` checked
    against the engine's name and cleared so that the engines' answers compare."""
    engine, replica = target
    out = []
    for answer in replica.Apply(iter(requests), timeout=60):
        for a in answer.answers:
            assert a.engine == engine
            a.engine = ""
        out.append(answer)
    return out


def targets(replicas: dict[str, rpc.ReplicaStub]) -> dict[str, Any]:
    return {e: (e, r) for e, r in replicas.items()}


def named(symbol: str, msg: Any, timeframe: str = "30m") -> Any:
    """A stream message (its BarMessage) for the session ``symbol/timeframe``."""
    return pb.SessionMessage(
        session=pb.SessionName(symbol=symbol, timeframe=timeframe), bar=msg.bar
    )


def test_apply_answers_as_the_stream(
    stubs: dict[str, rpc.TradingStub], replicas: dict[str, rpc.ReplicaStub]
) -> None:
    """Two sessions opened by streams, then every stream case through Apply in requests of
    several sizes, the sessions interleaved: the answers a stream gives (a twin session's), the
    same on both engines."""
    rows = list(load_csv(BTC).rows())
    first, second = script("APA", rows)[1:], script("APB", rows[100:])[1:]
    cfg: dict[str, Any] = {"macd": {"fast_period": 7}}
    for symbol in ("APA", "APB"):
        same(stubs, lambda s, n=symbol: converse(s, [open_msg(n, **cfg)]))
    twin_a = same(stubs, lambda s: converse(s, [open_msg("APAT", **cfg), *first]))[1:]
    twin_b = same(stubs, lambda s: converse(s, [open_msg("APBT", **cfg), *second]))[1:]
    order = [("APA", m, k) for k, m in enumerate(first)] + [
        ("APB", m, k) for k, m in enumerate(second)
    ]
    order.sort(key=lambda x: (x[2] // 3 if x[0] == "APA" else x[2] // 5, x[0]))
    sizes = [1, 2, 40, 7, 1, 100, 3]
    requests, at, i = [], 0, 0
    while at < len(order):
        part = order[at : at + sizes[i % len(sizes)]]
        requests.append(pb.ApplyRequest(messages=[named(n, m) for n, m, _ in part]))
        at, i = at + len(part), i + 1
    got = same(targets(replicas), lambda t: applied(t, requests))
    answers = [a for r in got for a in r.get("answers", [])]
    assert [len(r.get("answers", [])) for r in got] == [len(r.messages) for r in requests]
    twins = {"APA": twin_a, "APB": twin_b}
    assert answers == [twins[n][k] for n, _, k in order]
    for symbol in ("APA", "APB"):
        snap = same(
            stubs, lambda s, n=symbol: s.GetSnapshot(pb.SnapshotRequest(symbol=n, timeframe="30m"))
        )
        twin = same(
            stubs,
            lambda s, n=symbol: s.GetSnapshot(pb.SnapshotRequest(symbol=f"{n}T", timeframe="30m")),
        )
        assert (snap["last_seq"], snap["analysis"]) == (twin["last_seq"], twin["analysis"])


def test_apply_refusals_by_name(
    stubs: dict[str, rpc.TradingStub], replicas: dict[str, rpc.ReplicaStub]
) -> None:
    rows = list(load_csv(BTC).rows())
    same(stubs, lambda s: converse(s, [open_msg("APR"), bar_msg(1, rows[0])]))
    bad_names = [
        ("bad symbol!", "30m"),
        ("APR", "7x"),
        ("", ""),
        ("BTC\U0001f600é", "1é"),
        ("L" * 65, "30m"),
    ]
    messages = [
        named("NOPE", bar_msg(3, rows[0])),
        *[named(s, bar_msg(2, rows[1]), t) for s, t in bad_names],
        named("APR", bar_msg(2, rows[1]), "1h"),
        pb.SessionMessage(session=pb.SessionName(symbol="APR", timeframe="30m")),  # no bar
        named("APR", bar_msg(2, rows[1])),
    ]
    requests = [pb.ApplyRequest(), pb.ApplyRequest(messages=messages)]
    empty, got = same(targets(replicas), lambda t: applied(t, requests))
    assert empty == {}
    answers = got["answers"]
    codes = [a.get("error", {}).get("code") for a in answers]
    assert codes == [5, 3, 3, 3, 3, 3, 5, 9, None]
    assert answers[0] == {
        "seq": "3",
        "error": {"code": 5, "message": "session NOPE/30m not found"},
    }
    for (symbol, timeframe), a in zip(bad_names, answers[1:6], strict=True):
        opened = same(
            stubs,
            lambda s, n=symbol, t=timeframe: converse(
                s, [pb.StreamRequest(open=pb.OpenSession(symbol=n, timeframe=t))]
            ),
        )
        assert a["error"]["message"] == opened["message"]
        assert [(v["field"], v["description"]) for v in a["error"]["field_violations"]] == opened[
            "violations"
        ]
    assert answers[7]["error"]["expected_seq"] == "2"
    assert "update" in answers[8]
    # A closed session is unknown to Apply.
    closing = pb.CloseSessionsRequest(sessions=[pb.SessionName(symbol="APR", timeframe="30m")])
    same(replicas, lambda r: r.CloseSessions(closing))
    (after,) = same(
        targets(replicas),
        lambda t: applied(t, [pb.ApplyRequest(messages=[named("APR", bar_msg(3, rows[2]))])]),
    )
    assert after["answers"][0]["error"] == {"code": 5, "message": "session APR/30m not found"}


def test_apply_limits(
    stubs: dict[str, rpc.TradingStub], replicas: dict[str, rpc.ReplicaStub]
) -> None:
    """A request above server.max_message_bytes: each message refused in-band, nothing of it
    applied, the stream going on."""
    rows = list(load_csv(BTC).rows())
    same(stubs, lambda s: converse(s, [open_msg("APL")]))
    big = pb.ApplyRequest(messages=[named("APL", bar_msg(i + 1, rows[i])) for i in range(1000)])
    big.messages.extend(named("NOPE", bar_msg(i + 1, rows[0])) for i in range(40_000))
    size = big.ByteSize()
    assert 2_000_000 < size < 4_000_000
    small = pb.ApplyRequest(messages=big.messages[:2])
    first, refused, after = same(targets(replicas), lambda t: applied(t, [small, big, small]))
    assert [list(a) for a in first["answers"]] == [["seq", "update"]] * 2
    message = f"request of {size} bytes exceeds server.max_message_bytes (2000000)"
    assert refused["answers"] == [
        {"seq": str(m.bar.seq), "error": {"code": 8, "message": message}} for m in big.messages
    ]
    assert after == first


def test_apply_undecodable_request(servers: dict[str, Server]) -> None:
    """An undecodable request ends the stream, after the answers to the requests before it."""
    rows = list(load_csv(BTC).rows())
    one = pb.ApplyRequest(messages=[named("NOPE", bar_msg(1, rows[0]))]).SerializeToString()
    bad = b"\x0a\x0b\x12\x09\x09" + b"\0" * 8  # a BarMessage.seq as fixed64

    def run(s: Server) -> Any:
        call = s.channel().stream_stream(
            "/trading.v1.Replica/Apply",
            request_serializer=as_is,
            response_deserializer=pb.ApplyResponse.FromString,
        )(iter([one, bad, one]), timeout=60)
        answers: list[Any] = []
        try:
            answers.extend(call)
        except grpc.RpcError as e:
            return [len(a.answers) for a in answers], e.code().name, e.details()
        return [len(a.answers) for a in answers], None, None

    for e, s in servers.items():
        assert run(s) == (
            [1],
            "INVALID_ARGUMENT",
            "the request is not a valid trading.v1.ApplyRequest",
        ), e


# ---- Roles, limits, messages -------------------------------------------------------------------


def test_roles() -> None:
    sets = ["server.auth_token=client-t", "server.operator_token=operator-t"]
    started = {e: start(e, sets) for e in ENGINES}
    try:
        stubs = {e: rpc.TradingStub(s.channel()) for e, s in started.items()}
        replicas = {e: rpc.ReplicaStub(s.channel()) for e, s in started.items()}
        client = [("authorization", "Bearer client-t")]
        operator = [("authorization", "Bearer operator-t")]
        for who in (client, operator):
            ok = same(stubs, lambda s, w=who: s.GetInfo(pb.InfoRequest(), metadata=w))
            assert ok["protocol"] == "trading.v1"
        upd = pb.UpdateConfigRequest()
        denied = same(stubs, lambda s: s.UpdateConfig(upd, metadata=client))
        assert (denied["code"], denied["message"]) == (
            "PERMISSION_DENIED",
            "operator credential required",
        )
        denied = same(replicas, lambda r: r.CatchUp(pb.CatchUpRequest(), metadata=client))
        assert denied["code"] == "PERMISSION_DENIED"
        anonymous = same(replicas, lambda r: r.CloseSessions(pb.CloseSessionsRequest()))
        assert anonymous["code"] == "UNAUTHENTICATED"
        done = same(replicas, lambda r: r.CatchUp(pb.CatchUpRequest(), metadata=operator))
        assert done == {}
        denied = same(replicas, lambda r: list(r.Apply(iter([pb.ApplyRequest()]), metadata=client)))
        assert (denied["code"], denied["message"]) == (
            "PERMISSION_DENIED",
            "operator credential required",
        )
        anonymous = same(replicas, lambda r: list(r.Apply(iter([pb.ApplyRequest()]))))
        assert anonymous["code"] == "UNAUTHENTICATED"
        done = same(replicas, lambda r: list(r.Apply(iter([pb.ApplyRequest()]), metadata=operator)))
        assert done == [{}]
        assert same(stubs, lambda s: s.UpdateConfig(upd, metadata=operator))["config_version"]
    finally:
        for s in started.values():
            s.stop()
    for s in started.values():
        assert not any("client-t" in x or "operator-t" in x for x in s.log)


def test_violations_are_capped(stubs: dict[str, rpc.TradingStub]) -> None:
    n = 1000
    t = list(range(0, n * 60_000, 60_000))
    p = [100.0] * n
    r = pb.AnalyzeRequest(bars=pb.Bars(time=t, open=p, high=p, low=p, close=p, volume=[-1.0] * n))
    answer = same(stubs, lambda s: s.Analyze(r))
    assert answer["code"] == "INVALID_ARGUMENT"
    assert len(answer["violations"]) == 21
    assert answer["violations"][-1] == ("bars", "truncated: 980 more violations not listed")


@pytest.mark.parametrize(
    ("method", "data"),
    [
        ("/trading.v1.Trading/Analyze", b"\x1d\0\0\0\0"),  # field 3 as fixed32
        ("/trading.v1.Trading/Analyze", b"\x0a\x09\x09" + b"\0" * 8),  # bars.time as fixed64
        ("/trading.v1.Trading/Analyze", b"\xff\xff\xff"),
        ("/trading.v1.Trading/GetSnapshot", b"\x08\x01"),
        ("/trading.v1.Replica/CatchUp", b"\x0a\x09\x22\x07\x12\x05\x0d\0\0\0\0"),
    ],
    ids=["wire-type", "nested", "garbage", "snapshot", "catch-up"],
)
def test_undecodable_requests(servers: dict[str, Server], method: str, data: bytes) -> None:
    calls = {e: raw_unary(s.channel(), method) for e, s in servers.items()}
    answer = same(calls, lambda c: c(data))  # type: ignore[arg-type]
    name = {"Analyze": "AnalyzeRequest", "GetSnapshot": "SnapshotRequest"}.get(
        method.rsplit("/", 1)[1], "CatchUpRequest"
    )
    assert answer == {
        "code": "INVALID_ARGUMENT",
        "message": f"the request is not a valid trading.v1.{name}",
        "violations": [],
    }


@pytest.mark.parametrize(
    ("symbol", "shown"),
    [
        ('BTC\U0001f600é"\\\x01', "BTC\\u{1f600}\\u{e9}\\u{22}\\u{5c}\\u{1}"),
        ("L" * 65, "L" * 32 + "... (65 characters)"),
        ("\U0001f600" * 40, "\\u{1f600}" * 32 + "... (40 characters)"),
    ],
    ids=["non-bmp", "long", "long-non-bmp"],
)
def test_identifier_display(
    stubs: dict[str, rpc.TradingStub],
    replicas: dict[str, rpc.ReplicaStub],
    symbol: str,
    shown: str,
) -> None:
    # The display rule is shared: every engine's text shows the symbol alike.
    same(stubs, lambda s: converse(s, [open_msg(symbol)]))
    for opened in each(stubs, lambda s: converse(s, [open_msg(symbol)])).values():
        assert opened["code"] == "INVALID_ARGUMENT"
        assert f'symbol "{shown}" must be' in opened["message"]
    snaps = each(stubs, lambda s: s.GetSnapshot(pb.SnapshotRequest(symbol=symbol, timeframe="1m")))
    for snap in snaps.values():
        assert snap["violations"][0] == (
            "symbol",
            f'symbol "{shown}" must be 1 to 64 characters of A-Z a-z 0-9 . _ : / -',
        )
    got = same(replicas, lambda r: r.CatchUp(catch_up(entry(symbol, [], True))))
    assert got["sessions"][0]["session"] == f"{shown}/30m"


def test_sign_of_zero(stubs: dict[str, rpc.TradingStub]) -> None:
    """Every double bit for bit, -0.0 included: batch, stream updates and snapshot, both engines
    (``histogram_scale = 5e-324`` rounds histograms to signed zeros; -0.0 prices repaired)."""
    rows = list(load_csv(BTC).rows())[:120]
    t = rows[-1][0]
    zeros = [
        (t + 60_000, -0.0, -0.0, -0.0, -0.0, -0.0),
        (t + 120_000, 0.0, -0.0, 0.0, -0.0, 0.0),
        (t + 180_000, -0.0, -1.0, 0.0, -0.0, 0.0),  # repaired: high below the open
    ]
    rows += zeros
    cfg = {
        "macd": {"histogram_scale": 5e-324},
        "validation": {"repair": True, "allow_non_positive_prices": True},
    }
    bits: dict[str, Any] = {}
    for e, stub in stubs.items():
        bars = Bars(*(list(c) for c in zip(*rows, strict=True)))  # type: ignore[arg-type]
        batch = stub.Analyze(request(bars, cfg, with_macd=True)).analysis
        messages = [open_msg(f"ZERO{e}", **cfg)] + [bar_msg(i + 1, r) for i, r in enumerate(rows)]
        messages[0].open.with_macd = True
        updates = [a.update for a in stub.Stream(iter(messages)) if a.HasField("update")]
        snap = stub.GetSnapshot(pb.SnapshotRequest(symbol=f"ZERO{e}", timeframe="30m")).analysis
        stream_hist = [u.macd.histogram for u in updates]
        assert len(stream_hist) == len(rows)
        for name, values in (("dif", batch.macd.dif), ("histogram", batch.macd.histogram)):
            assert [x.hex() for x in values] == [x.hex() for x in getattr(snap.macd, name)], name
        assert [x.hex() for x in batch.macd.histogram] == [x.hex() for x in stream_hist]
        assert batch.repairs == snap.repairs
        bits[e] = batch.SerializeToString(deterministic=True)
        assert any(math.copysign(1.0, x) < 0 and x == 0 for x in batch.macd.histogram)
    assert len(set(bits.values())) == 1, "the engines differ in some bit"


def test_a_burst_of_stream_opens_is_answered(servers: dict[str, Server]) -> None:
    """2,500 streams opened at once on one connection and held open until all are: every one
    opened (the gRPC core's own defaults refused calls at random above 1,000 waiting for the
    server's loop, as INTERNAL or CANCELLED with no message)."""
    count = 2500

    async def burst(address: str) -> collections.Counter[str]:
        ended: list[str] = []
        everyone = asyncio.Event()

        async def one(stub: rpc.TradingStub, i: int) -> None:
            call = stub.Stream()
            try:
                await call.write(
                    pb.StreamRequest(open=pb.OpenSession(symbol=f"BURST{i}", timeframe="1m"))
                )
                answer = await call.read()
                ended.append("opened" if answer.WhichOneof("kind") == "opened" else str(answer))
            except grpc.aio.AioRpcError as e:
                ended.append(f"{e.code().name}: {e.details()}")
            if len(ended) == count:
                everyone.set()
            await everyone.wait()
            call.cancel()

        async with grpc.aio.insecure_channel(address) as channel:
            stub = rpc.TradingStub(channel)
            await asyncio.wait_for(
                asyncio.gather(*(one(stub, i) for i in range(count))), timeout=120
            )
        return collections.Counter(ended)

    for engine, server in servers.items():
        assert asyncio.run(burst(server.address)) == {"opened": count}, engine
