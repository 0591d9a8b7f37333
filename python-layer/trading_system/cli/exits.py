"""Exit statuses, and the one table that turns a command's failure into a status and a message.

Every command raises instead of printing its errors; :func:`run` catches what :data:`TABLE`
(and :func:`client_rules`, for the client library's errors) names, prints the message on
stderr and returns the status. An exception no rule names is a bug: it propagates.

A command that knows more than the exception adds it: :class:`Failure` carries a message
already put in words (the bad bars at their CSV lines, a file being written), and
:func:`framed` names the subject of a block's failures (``monitor HOST:PORT``) or gives them
another status (a probe that cannot run exits 2, whatever kept it from running).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

from trading_system.errors import ConfigError, DataError, InvalidBars

OK = 0
"""Done (for ``serve``: stopped by SIGTERM or SIGINT; for ``health``/``probe``: serving)."""
FAILED = 1
"""Anything else: a missing file, an engine not installed, a port in use, a refused call, no
engine serving, a service not serving."""
BAD_INPUT = 2
"""Bad input or configuration (also argparse's status for a usage error)."""
NO_ANSWER = 3
"""The server did not answer: unreachable, or past the deadline."""
TLS_FAILED = 4
"""TLS failed: a certificate not trusted or refused, TLS on one side only."""


class Failure(Exception):
    """A failure already put in words: ``message`` is what stderr gets (whole lines, ``error:``
    included), ``status`` the exit status."""

    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Rule:
    """How one kind of failure ends a command: its exit status (or a function of the exception
    giving it) and what follows ``error: `` on stderr."""

    kind: type[BaseException]
    status: int | Callable[[Any], int]
    words: Callable[[Any], str]

    def status_of(self, e: BaseException) -> int:
        return self.status(e) if callable(self.status) else self.status


RESEARCH = ("pandas", "pyarrow", "plotly")
"""The packages of the ``research`` extra (pyproject.toml): files and charts need them, the
servers and the operator's commands do not, and the service image leaves them out."""


def _import_error(e: ImportError) -> str:
    top = (e.name or "").split(".")[0]
    if top in RESEARCH:
        return (
            f"this command needs {top}, which this installation leaves out (the service image "
            "installs no research extra): pip install 'trading-system[research]'"
        )
    return str(e)


def _os_error(e: OSError) -> str:
    return f"reading {e.filename}: {e.strerror or e}"


TABLE: tuple[Rule, ...] = (
    Rule(ConfigError, BAD_INPUT, str),
    Rule(InvalidBars, BAD_INPUT, str),
    Rule(DataError, BAD_INPUT, lambda e: f"reading {e}"),
    Rule(ImportError, FAILED, _import_error),
    Rule(OSError, FAILED, _os_error),
    Rule(RuntimeError, FAILED, str),
)
"""The failures every command may meet, most specific first (:class:`Failure` and the client's
errors come before these)."""


def client_rules() -> tuple[Rule, ...]:
    """The client library's errors: a TLS failure exits 4, no answer (``UNAVAILABLE``,
    ``DEADLINE_EXCEEDED``) 3, any other status 1. Looked up only when the client is loaded: a
    ClientError cannot exist before, and commands that never call a server do not load grpcio."""
    client = sys.modules.get("trading_system.client")
    if client is None:
        return ()
    return (
        Rule(client.TlsError, TLS_FAILED, str),
        Rule(
            client.ClientError,
            lambda e: NO_ANSWER if e.code in client.RETRYABLE else FAILED,
            str,
        ),
    )


def rule(e: BaseException) -> Rule | None:
    """The rule of ``e``, or None when no rule names it."""
    for r in client_rules() + TABLE:
        if isinstance(e, r.kind):
            return r
    return None


def exit_status(e: BaseException) -> int:
    """The exit status of ``e`` by the table (1 for what no rule names)."""
    r = rule(e)
    return r.status_of(e) if r is not None else FAILED


def outcome(e: BaseException, subject: str = "") -> Failure | None:
    """``e`` as a :class:`Failure` (its status and message, ``subject`` named in the message),
    or None when no rule names it."""
    if isinstance(e, Failure):
        return e
    r = rule(e)
    if r is None:
        return None
    where = f"{subject}: " if subject else ""
    return Failure(f"error: {where}{r.words(e)}", r.status_of(e))


@contextmanager
def framed(subject: str = "", status: int | None = None) -> Iterator[None]:
    """Failures of the block as :class:`Failure`: ``error: <subject>: <words>``, with ``status``
    instead of the rule's when given. What no rule names propagates unchanged."""
    try:
        yield
    except Exception as e:
        failure = outcome(e, subject)
        if failure is None:
            raise
        if status is not None:
            failure = Failure(failure.message, status)
        raise failure from e


Command = Callable[[Any, TextIO, TextIO], int]


def run(command: Command, args: Any, out: TextIO, err: TextIO) -> int:
    """Runs ``command``; a failure the table names is printed on ``err`` and becomes its exit
    status (nothing else is written)."""
    try:
        return command(args, out, err)
    except Exception as e:
        failure = outcome(e)
        if failure is None:
            raise
        print(failure.message, file=err)
        return failure.status
