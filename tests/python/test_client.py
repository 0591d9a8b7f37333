"""The client library (``trading_system.client``) against real servers of both engines: results
equal to the engines' own documents, errors decoded, deadlines, token and TLS, streams equal to
batch analyses, and sessions that survive broken connections (a TCP proxy whose connections the
tests cut) with every bar applied exactly once."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from faults import FaultProxy
from golden import GOLDEN, bars_of, cases
from servers import Server, start
from test_server_python import _pki
from typed import engine_choice

from trading_system import analyze, load_csv
from trading_system.client import AsyncClient, Client, ClientError, Retry, TlsError
from trading_system.errors import ConfigError, InvalidBars, Violation

ENGINES = ("rust", "python")
SETS = ["server.replay_window=64"]
BTC = GOLDEN.parent / "data" / "BTCUSD-BITSTAMP_30m.csv"
ROWS = list(load_csv(BTC).rows())
FAST = Retry(budget=10.0, base=0.05, cap=0.5)
"""Short backoff, so the reconnect tests take little time."""


@pytest.fixture(scope="module", params=ENGINES)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    s = start(request.param, SETS)
    try:
        yield s
    finally:
        assert s.stop() == 0


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.address, timeout=30.0, retry=FAST) as c:
        yield c


def bad_bar(row: tuple[Any, ...]) -> tuple[Any, ...]:
    t, _, h, lo, c, v = row
    return (t, math.nan, h, lo, c, v)


# ---- Analyze ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config", [None, {"pen": {"definition": "traditional"}}, {"macd.seed": "sma"}]
)
def test_analyze_equals_the_engines_document(
    server: Server, client: Client, config: dict[str, Any] | None
) -> None:
    got = client.analyze(BTC, config=config, with_macd=True)
    want = analyze(BTC, config=config, engine=engine_choice(server.engine), with_macd=True)
    assert got.engine == server.engine
    assert got.to_dict() == want.to_dict()
    assert got.pens == want.pens  # the typed views work on the answer too


def test_bad_bars_raise_invalid_bars_with_every_violation(client: Client) -> None:
    for name, case in cases():
        if "expected_error" not in case:
            continue
        with pytest.raises(InvalidBars) as e:
            client.analyze(bars_of(case), config=case.get("config"))
        want = [Violation.from_dict(v) for v in case["expected_error"]]
        assert e.value.violations == want, name


def test_bad_configuration_raises_config_error(client: Client) -> None:
    with pytest.raises(ConfigError) as e:
        client.analyze(BTC, config={"macd": {"seed": "median"}})
    assert e.value.key == "macd.seed"
    with pytest.raises(ConfigError) as e:
        client.analyze(BTC, config={"macd": {"no_such_key": 1}})  # refused before sending
    assert e.value.key == "macd.no_such_key"


def test_deadline_is_enforced(client: Client) -> None:
    n = 300_000
    t0 = 1_700_000_000_000  # a real time: the loader refuses epoch numbers before 1971
    rows = [(t0 + i * 60_000, 100.0, 101.0 + i % 7, 99.0, 100.0, 1.0) for i in range(n)]
    with pytest.raises(ClientError) as e:
        client.analyze(rows, timeout=0.001)
    assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_unreachable_server_is_unavailable_after_retries() -> None:
    with Client("127.0.0.1:1", retry=Retry(max_attempts=2, base=0.01)) as c:
        with pytest.raises(ClientError) as e:
            c.analyze(ROWS[:10])
    assert e.value.code == grpc.StatusCode.UNAVAILABLE


# ---- Streams ----------------------------------------------------------------------------------


def test_stream_equals_batch(server: Server, client: Client) -> None:
    with client.stream("BTCUSD", "30m", config={"pen": {"definition": "traditional"}}) as s:
        assert s.last_seq == 0
        for i, row in enumerate(ROWS[:150]):
            if i % 10 == 0:  # a provisional bar first, then its final values
                t, o = row[0], row[1]
                s.append((t, o, o, o, o, 0.0))
                u = s.replace_last(row)
                assert u.replaced
            else:
                u = s.append(row)
            assert u.engine == server.engine and u.seq == s.last_seq and u.index == i
        snap = s.snapshot()
        assert snap.last_seq == s.last_seq == 165
    want = analyze(
        ROWS[:150],
        config={"pen": {"definition": "traditional"}},
        engine=engine_choice(server.engine),
    )
    assert snap.to_dict() == want.to_dict()


def test_in_band_bad_bar_keeps_the_session_usable(client: Client) -> None:
    with client.stream("ETHUSD", "30m") as s:
        s.append(ROWS[0])
        with pytest.raises(InvalidBars) as e:
            s.append(bad_bar(ROWS[1]))
        assert [(v.index, v.field, v.rule) for v in e.value.violations] == [(1, "open", "finite")]
        assert s.last_seq == 1  # the number was not consumed
        with pytest.raises(InvalidBars):
            s.append(ROWS[0])  # a time not after the last one
        assert s.append(ROWS[1]).seq == 2
        assert s.snapshot().bars == 2


def test_resume_an_existing_session(client: Client) -> None:
    with client.stream("RESUME", "1h") as s:
        for row in ROWS[:20]:
            s.append(row)
    with client.stream("RESUME", "1h", resume=True) as s:
        assert s.last_seq == 20 and s.opened is not None and s.opened.resumed
        assert s.append(ROWS[20]).seq == 21
    with pytest.raises(ClientError) as e:
        client.stream("NOPE", "1h", resume=True).open()
    assert e.value.code == grpc.StatusCode.NOT_FOUND


@pytest.fixture
def proxy(server: Server) -> Iterator[FaultProxy]:
    p = FaultProxy(server.address)
    try:
        yield p
    finally:
        p.close()


def test_stream_survives_broken_connections(server: Server, proxy: FaultProxy) -> None:
    answers_lost = 0
    with Client(proxy.address, timeout=30.0, retry=FAST) as c, c.stream("DROP", "30m") as s:
        for i, row in enumerate(ROWS[:120]):
            if i % 30 == 10:
                proxy.cut()  # between messages: the next one finds the connection gone
            if i % 30 == 20:
                proxy.cut_after_next_request()  # this one is applied, its answer lost
            u = s.append(row)
            assert u.seq == i + 1 and u.index == i
            if i % 30 == 20:
                assert s.opened is not None and s.opened.last_seq == u.seq
                answers_lost += 1
        assert s.reconnects == 8 and answers_lost == 4
        snap = s.snapshot()
    assert snap.last_seq == 120
    assert snap.to_dict() == analyze(ROWS[:120], engine=engine_choice(server.engine)).to_dict()


# ---- Health --------------------------------------------------------------------------------------


def test_health_check(client: Client) -> None:
    """grpc.health.v1 on either engine: the contract's service by default, the whole server
    with "", NOT_FOUND for a service the server does not know."""
    assert client.health() == "SERVING"
    assert client.health("") == "SERVING"
    with pytest.raises(ClientError) as e:
        client.health("no.such.Service")
    assert e.value.code == grpc.StatusCode.NOT_FOUND


def test_set_mode_names_the_modes() -> None:
    """An unknown mode is refused before anything is sent (no server here)."""
    with Client("127.0.0.1:1", retry=Retry(max_attempts=1)) as c, pytest.raises(ValueError):
        c.set_mode("fastest")


# ---- Token and TLS ----------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_bearer_token(engine: str) -> None:
    s = start(engine, ["server.auth_token=s3cret"])
    try:
        with Client(s.address, token="s3cret") as c:
            assert c.analyze(ROWS[:50]).bars == 50
            with c.stream("TOK", "1m") as st:
                assert st.append(ROWS[0]).seq == 1
        for token in (None, "wrong"):
            with Client(s.address, token=token) as c, pytest.raises(ClientError) as e:
                c.analyze(ROWS[:50])
            assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
            # Health needs no token (the containers' checks have none).
            with Client(s.address, token=token) as c:
                assert c.health() == "SERVING"
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_mutual_tls(engine: str, tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    f = pki.files
    sets = [
        f"server.tls_cert_file={f['cert']}",
        f"server.tls_key_file={f['key']}",
        f"server.tls_client_ca_file={f['ca']}",
    ]
    s = start(engine, sets)
    port = s.address.rsplit(":", 1)[1]
    try:
        cert, key = pki.client
        # By name: the server's certificate is for localhost.
        with Client(f"localhost:{port}", tls_ca=f["ca"], tls_cert=cert, tls_key=key) as c:
            assert c.analyze(ROWS[:50]).engine == engine
        no_cert = Client(f"localhost:{port}", tls_ca=pki.ca, retry=Retry(max_attempts=1))
        with no_cert, pytest.raises(ClientError) as e:
            no_cert.analyze(ROWS[:50])
        assert e.value.code == grpc.StatusCode.UNAVAILABLE
        # The operations' calls name the failure as TLS (how precisely depends on how the
        # server hangs up: test_probe.py checks the words).
        no_cert = Client(f"localhost:{port}", tls_ca=pki.ca, retry=Retry(max_attempts=1))
        with no_cert, pytest.raises(TlsError) as tls:
            no_cert.health()
        assert tls.value.code == grpc.StatusCode.UNAVAILABLE
        assert tls.value.problem and str(tls.value) == f"TLS: {tls.value.problem}"
    finally:
        assert s.stop() == 0


# ---- The asynchronous client ------------------------------------------------------------------


def test_async_client(server: Server) -> None:
    async def main() -> None:
        async with AsyncClient(server.address, retry=FAST) as c:
            got = await c.analyze(BTC, with_macd=True)
            assert got.engine == server.engine
            want = analyze(BTC, engine=engine_choice(server.engine), with_macd=True)
            assert got.to_dict() == want.to_dict()
            with pytest.raises(InvalidBars):
                await c.analyze([bad_bar(ROWS[0])])
            async with c.stream("ASYNC", "5m") as s:
                for row in ROWS[:80]:
                    await s.append(row)
                with pytest.raises(InvalidBars):
                    await s.append(bad_bar(ROWS[80]))
                assert (await s.replace_last(ROWS[80])).seq == 81
                snap = await s.snapshot()
            rows = [*ROWS[:79], ROWS[80]]
            assert snap.to_dict() == analyze(rows, engine=engine_choice(server.engine)).to_dict()

    asyncio.run(main())


def test_async_stream_survives_broken_connections(server: Server, proxy: FaultProxy) -> None:
    async def main() -> None:
        async with AsyncClient(proxy.address, retry=FAST) as c:
            async with c.stream("ADROP", "30m") as s:
                for i, row in enumerate(ROWS[:60]):
                    if i == 20:
                        proxy.cut()
                    if i == 40:
                        proxy.cut_after_next_request()
                    assert (await s.append(row)).seq == i + 1
                assert s.reconnects == 2
                snap = await s.snapshot()
        assert snap.to_dict() == analyze(ROWS[:60], engine=engine_choice(server.engine)).to_dict()

    asyncio.run(main())


@pytest.mark.parametrize("engine", ENGINES)
def test_operator_token_on_administrative_calls(engine: str) -> None:
    """UpdateConfig carries the operator token, trading calls the client token: against a
    server that accepts only the operator's, the one succeeds and the other is refused."""
    s = start(engine, ["server.auth_token=op"])
    try:
        with Client(s.address, token="bot", operator_token="op") as c:
            changed = c.update_config({"macd": {"fast_period": 10}})
            assert changed["config"]["macd"]["fast_period"] == 10
            with pytest.raises(ClientError) as e:
                c.get_config()
            assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
        # Without an operator token, administrative calls send the client token.
        with Client(s.address, token="op") as c:
            assert c.get_config()["config"]["macd"]["fast_period"] == 10
            assert c.update_config({"macd": {"fast_period": 12}})["engine"] == engine
    finally:
        assert s.stop() == 0
