"""The proto ↔ document conversions (python-layer/trading_system/convert.py) without a server:
a document made a message and read back is the same document, key order included (its JSON
text is equal); overrides and whole configurations survive the trip; the configuration digest
is the one the contract defines. The servers' answers are read with the same functions in
test_server_python.py and test_client.py."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from trading_system import convert
from trading_system.config import EngineConfig, engine_config
from trading_system.data import load_csv
from trading_system.engine import Session, analyze
from trading_system.errors import ConfigError
from trading_system.proto import trading_pb2 as pb

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
BTC = DATA / "BTCUSD-BITSTAMP_30m.csv"
# Repairs on, so the documents carry some; an SMA-seeded MACD, so that absent values (before the
# lookback) exist too.
CONFIG = {"validation": {"repair": True}, "macd": {"seed": "sma", "fast_period": 5}}


def text(doc: object) -> str:
    return json.dumps(doc, ensure_ascii=False)


@pytest.mark.parametrize("with_macd", [False, True])
def test_an_analysis_document_survives_the_message(with_macd: bool) -> None:
    bars = load_csv(BTC)
    doc = analyze(bars, engine_config(CONFIG), with_macd)
    assert doc["signals"] and doc["pivots"] and (not with_macd or "macd" in doc)
    msg = convert.analysis(doc, bars.time.tolist())
    back = convert.analysis_document(pb.Analysis.FromString(msg.SerializeToString()))
    assert text(back) == text(doc)
    if with_macd:
        first = back.get("macd", {"dif": []})["dif"]
        assert first[0] is None and math.isnan(msg.macd.dif[0]), "absent is NaN in the message"


def test_update_documents_survive_the_message() -> None:
    bars = load_csv(BTC)
    session = Session(engine_config(CONFIG), with_macd=True)
    tails = 0
    for i, (t, o, h, lo, c, v) in enumerate(bars.rows()):
        if i >= 400:
            break
        doc = session.append(t, o, h, lo, c, v)
        if i % 3 == 0:  # a replaced bar too
            doc = session.replace_last(t, o, h, lo, c, v)
        tails += doc["tail"] is not None
        msg = convert.update(doc, bars.time.tolist())
        back = convert.update_document(pb.Update.FromString(msg.SerializeToString()))
        assert text(back) == text(doc), f"bar {i}"
    assert tails > 0


def test_overrides_and_configurations_survive_the_message() -> None:
    overrides = {"pen": {"definition": "traditional"}, "macd.fast_period": 7}
    msg = convert.overrides_message(overrides)
    assert convert.overrides(msg) == {
        "macd": {"fast_period": 7},
        "pen": {"definition": "traditional"},
    }
    whole = EngineConfig().to_dict()
    assert convert.config_document(convert.engine_config(whole)) == whole
    with pytest.raises(ConfigError) as unknown:
        convert.overrides_message({"nope": {"x": 1}})
    assert unknown.value.key == "nope"
    with pytest.raises(ConfigError) as wrong:
        convert.overrides_message({"macd": {"fast_period": "seven"}})
    assert wrong.value.key == "macd.fast_period"


def test_config_version_is_the_contracts_digest() -> None:
    msg = convert.engine_config(EngineConfig().to_dict())
    digest = hashlib.sha256(msg.SerializeToString(deterministic=True)).digest()[:8].hex()
    assert convert.config_version(msg) == digest and len(digest) == 16


def test_columns_of_different_lengths_are_named() -> None:
    msg = pb.Bars(time=[1, 2], open=[1.0], high=[1.0, 2.0], low=[], close=[1.0, 2.0], volume=[1.0])
    assert convert.mismatched_columns(msg) == [("open", 1), ("low", 0), ("volume", 1)]
    assert not convert.is_empty(msg) and convert.is_empty(pb.Bars())
