"""Which stack serves a symbol (trading_system.stacks, docs/DEPLOY.md "Several stacks"): the
rule is fixed (clients in any language compute it alike), spreads symbols evenly, and adding or
removing a stack moves only the symbols it wins or held."""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter

import pytest

from trading_system.client import stack_for
from trading_system.stacks import weight

SYMBOLS = [f"{n:06d}.{market}" for n in range(2_500) for market in ("SH", "SZ", "HK", "US")]
"""10,000 symbols of the shape the engines take."""
STACKS = ["stack-a", "stack-b", "stack-c", "stack-d"]


def assignment(stacks: list[str]) -> dict[str, str]:
    return {symbol: stack_for(symbol, stacks) for symbol in SYMBOLS}


def test_the_rule_is_the_documented_one() -> None:
    # The weight as docs/DEPLOY.md states it, computed here from hashlib directly; and answers
    # pinned, so a change of the rule (which would move every stack's symbols) fails here.
    for stack, symbol in [("stack-a", "000001.SH"), ("east", "BTC/USDT"), ("δ", "AAPL")]:
        digest = hashlib.sha256(f"{stack}\0{symbol}".encode()).digest()
        assert weight(stack, symbol) == int.from_bytes(digest[:8], "big")
    pinned = {
        symbol: stack_for(symbol, STACKS) for symbol in ("000001.SH", "600519.SH", "AAPL", "ES:1m")
    }
    assert pinned == {
        "000001.SH": "stack-a",
        "600519.SH": "stack-d",
        "AAPL": "stack-d",
        "ES:1m": "stack-a",
    }
    for symbol, stack in pinned.items():
        best = max(STACKS, key=lambda s: weight(s, symbol))
        assert stack == best


def test_the_order_of_the_stacks_does_not_matter() -> None:
    for symbol in SYMBOLS[:200]:
        answers = {stack_for(symbol, list(p)) for p in itertools.permutations(STACKS)}
        assert len(answers) == 1
    # A mapping of names to addresses: its keys are the names.
    addresses = {name: f"monitor.{name}.svc:50050" for name in STACKS}
    assert stack_for("000001.SH", addresses) == stack_for("000001.SH", STACKS)


def test_symbols_spread_evenly() -> None:
    counts = Counter(assignment(STACKS).values())
    assert set(counts) == set(STACKS)
    even = len(SYMBOLS) / len(STACKS)
    # 10,000 symbols over 4 stacks: a binomial spread of about ±43 (one standard deviation).
    assert all(abs(n - even) < 0.05 * even for n in counts.values()), counts


def test_adding_a_stack_moves_only_what_it_wins() -> None:
    before = assignment(STACKS)
    after = assignment([*STACKS, "stack-e"])
    moved = {symbol for symbol in SYMBOLS if before[symbol] != after[symbol]}
    # Every symbol that moved went to the new stack, and the new stack took nothing else.
    assert all(after[symbol] == "stack-e" for symbol in moved)
    assert moved == {symbol for symbol, stack in after.items() if stack == "stack-e"}
    # About 1/5 of them (the new stack's fair share).
    assert abs(len(moved) / len(SYMBOLS) - 1 / 5) < 0.02, len(moved)


def test_removing_a_stack_moves_only_its_symbols() -> None:
    before = assignment(STACKS)
    after = assignment([s for s in STACKS if s != "stack-b"])
    for symbol in SYMBOLS:
        if before[symbol] != "stack-b":
            assert after[symbol] == before[symbol]
        else:
            assert after[symbol] != "stack-b"


def test_one_stack_serves_everything() -> None:
    assert {stack_for(symbol, ["only"]) for symbol in SYMBOLS[:100]} == {"only"}


@pytest.mark.parametrize(
    ("symbol", "stacks", "message"),
    [
        ("AAPL", [], "no stacks"),
        ("AAPL", ["a", ""], "a stack name is empty"),
        ("AAPL", ["a", "b", "a"], "stack 'a' given twice"),
        ("", ["a"], "the symbol is empty"),
    ],
)
def test_bad_arguments_are_refused(symbol: str, stacks: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stack_for(symbol, stacks)
