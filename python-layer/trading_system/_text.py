"""Transitional: the command line (cli.py) still imports ``format_number`` from here; its
import moves to :mod:`trading_system._legacy_text` when the command line becomes a package, and
this module goes."""

from trading_system._legacy_text import format_number

__all__ = ["format_number"]
