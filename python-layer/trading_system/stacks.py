"""Which stack serves a symbol, when one stack does not hold them all (docs/DEPLOY.md, "Several
stacks").

A stack is one monitor with its two engines; its sessions live in its engines and its
monitor's journals, so every session of a symbol must go to the same stack, and a client must
find that stack from the symbol alone. The rule is rendezvous hashing (highest random weight):
each stack's weight for a symbol is the first 8 bytes, big-endian, of SHA-256 over the stack's
name, one zero byte and the symbol (both UTF-8); the stack with the highest weight serves the
symbol (of equal weights, the first name in sorted order). So:

- the answer depends on the set of stack names only, not on their order, a process or a
  version of Python: any client in any language computes it alike;
- symbols spread evenly over the stacks;
- adding a stack moves only the symbols the new stack wins, about 1/N of them with N stacks
  after the change, each from its old stack to the new one; removing a stack moves only that
  stack's symbols. Nothing else moves, so no other session has to be rebuilt.

Stacks are named (not numbered) so that a name keeps its symbols whatever is added or removed;
a name is the stack's identity, its address may change. With ``stacks`` a mapping of names to
addresses, ``stacks[stack_for(symbol, stacks)]`` is the address to connect to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["stack_for", "weight"]


def weight(stack: str, symbol: str) -> int:
    """The stack's weight for the symbol: the first 8 bytes, big-endian, of
    SHA-256(stack + NUL + symbol) over UTF-8."""
    digest = hashlib.sha256(stack.encode() + b"\0" + symbol.encode()).digest()
    return int.from_bytes(digest[:8], "big")


def stack_for(symbol: str, stacks: Iterable[str]) -> str:
    """The name of the stack that serves ``symbol``, one of ``stacks`` (names; a mapping's keys).
    Raises ``ValueError`` for no stacks, an empty name, a name given twice or an empty symbol."""
    names = list(stacks)
    if not names:
        raise ValueError("stack_for: no stacks")
    if not symbol:
        raise ValueError("stack_for: the symbol is empty")
    seen: set[str] = set()
    for name in names:
        if not name:
            raise ValueError("stack_for: a stack name is empty")
        if name in seen:
            raise ValueError(f"stack_for: stack {name!r} given twice")
        seen.add(name)
    # max() keeps the first of equal maxima: over sorted names, the smallest.
    return max(sorted(names), key=lambda name: weight(name, symbol))
