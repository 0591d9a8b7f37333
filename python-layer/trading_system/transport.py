"""How every client of the servers connects: one place that turns the configuration into gRPC
channels and call metadata (issue 14; the rules of ``config/default.yaml``'s ``client`` section).

Used by the client library (:mod:`trading_system.client`, and through it the command line's
``health``, ``failover``, ``override``, ``probe`` and ``demo``) and the monitor's channels to
the engines.

- **TLS** when ``client.tls_ca_file`` or ``server.tls_cert_file`` is set: the server is trusted
  through ``client.tls_ca_file`` (else the system's roots); ``client.tls_cert_file`` with
  ``client.tls_key_file`` is presented as the client certificate (mutual TLS);
  ``client.tls_server_name`` is the name verified in the server's certificate (default: the
  host of the address). Plaintext otherwise.
- **Tokens** by role: ``"client"`` (trading calls: Analyze, Stream, GetSnapshot, GetInfo,
  GetConfig) sends the client token, ``server.auth_token`` or the contents of
  ``server.auth_token_file``; ``"operator"`` (administrative calls: UpdateConfig, Replica.*,
  Admin.*) sends the operator token (``server.operator_token`` / ``operator_token_file``) when one
  is configured, else the client token. Token files are read as the servers read them
  (:func:`trading_system.config.read_token_files`: trailing whitespace stripped; an empty or
  unreadable file is a :class:`~trading_system.errors.ConfigError` naming the key and the path,
  never the token).

The usual entry points::

    from trading_system import transport

    settings = transport.Settings.from_config(cfg)         # reads the PEM and token files once
    channel = transport.channel("127.0.0.1:50051", settings, aio=True)
    metadata = settings.metadata("operator")                # (("authorization", "Bearer …"),)

``channel`` and ``metadata`` also take the :class:`~trading_system.config.FileConfig` itself
(reading the files at each call: keep the :class:`Settings` where channels are made often), or
``None`` (plaintext, no token).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, overload

import grpc
import grpc.aio

from trading_system.errors import ConfigError

if TYPE_CHECKING:
    # Imported where a configuration is read: the probe builds its Settings without pydantic.
    from trading_system.config import FileConfig

__all__ = [
    "DEFAULT_OPTIONS",
    "Pem",
    "Role",
    "Settings",
    "Source",
    "channel",
    "is_tls_failure",
    "local_address",
    "metadata",
    "monitor_address",
    "settings",
    "tls_problem",
]

Role = Literal["client", "operator"]
"""Whose credential a call carries: a trading client's, or an operator's (administrative)."""

Pem = str | PathLike[str] | bytes
"""PEM data, or the path of a file holding it."""

TARGET_NAME_OPTION = "grpc.ssl_target_name_override"
"""The channel option naming the server name to verify (``client.tls_server_name``)."""

DEFAULT_OPTIONS: tuple[tuple[str, Any], ...] = (
    # Analyses with MACD of long series exceed the 4 MB default; the server has its own limit.
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
)
"""Options every channel gets (``options=`` given to :func:`channel` come after them, so a
caller may override one)."""


def _read(key: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(key, f"cannot read {path}: {e.strerror or e}") from None


def _pem(value: Pem | None, what: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return _read(what, str(value))


@dataclass(frozen=True)
class Settings:
    """Everything a client needs to connect and authenticate, files already read.

    ``tls``: use TLS; ``ca``: the PEM roots to trust (None: the system's); ``cert`` + ``key``:
    the client certificate chain and its private key (mutual TLS); ``server_name``: the name to
    verify in the server's certificate ("" : the address's host); ``token``: the client token;
    ``operator_token``: the operator token ("": administrative calls send ``token``).
    ``tls`` is implied by ``ca`` or ``cert``. Build it from a configuration with
    :meth:`from_config`, or directly with the values (PEM bytes)."""

    tls: bool = False
    ca: bytes | None = field(default=None, repr=False)
    cert: bytes | None = field(default=None, repr=False)
    key: bytes | None = field(default=None, repr=False)
    server_name: str = ""
    token: str = field(default="", repr=False)
    operator_token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("a client certificate and its key go together: give both or neither")
        if self.ca is not None or self.cert is not None:
            object.__setattr__(self, "tls", True)

    @classmethod
    def from_config(cls, cfg: FileConfig) -> Settings:
        """The settings of ``cfg`` (module docstring): reads the PEM and token files now.
        Raises :class:`~trading_system.errors.ConfigError` naming the key (and the path) of a
        file that cannot be read or holds no token, or of settings that go together set alone;
        a token never appears in a message."""
        c = cfg.client
        if bool(c.tls_cert_file) != bool(c.tls_key_file):
            raise ConfigError(
                "client.tls_key_file" if c.tls_cert_file else "client.tls_cert_file",
                "client.tls_cert_file and client.tls_key_file go together: set both or neither",
            )
        from trading_system.config import read_token_files

        s = read_token_files(cfg).server
        return cls(
            tls=bool(c.tls_ca_file or cfg.server.tls_cert_file),
            ca=_read("client.tls_ca_file", c.tls_ca_file) if c.tls_ca_file else None,
            cert=_read("client.tls_cert_file", c.tls_cert_file) if c.tls_cert_file else None,
            key=_read("client.tls_key_file", c.tls_key_file) if c.tls_key_file else None,
            server_name=c.tls_server_name,
            token=s.auth_token,
            operator_token=s.operator_token,
        )

    @classmethod
    def of(
        cls,
        *,
        token: str | None = None,
        operator_token: str | None = None,
        tls: bool = False,
        tls_ca: Pem | None = None,
        tls_cert: Pem | None = None,
        tls_key: Pem | None = None,
        tls_server_name: str | None = None,
    ) -> Settings:
        """Settings from explicit values: PEM data or file paths, tokens as text (None: not
        set). TLS when ``tls`` or any certificate is given."""
        return cls(
            tls=tls,
            ca=_pem(tls_ca, "tls_ca"),
            cert=_pem(tls_cert, "tls_cert"),
            key=_pem(tls_key, "tls_key"),
            server_name=tls_server_name or "",
            token=token or "",
            operator_token=operator_token or "",
        )

    def credentials(self) -> grpc.ChannelCredentials | None:
        """The channel credentials (None: plaintext)."""
        if not self.tls:
            return None
        return grpc.ssl_channel_credentials(self.ca, self.key, self.cert)

    def options(self) -> list[tuple[str, Any]]:
        """The channel options these settings need (the server name to verify)."""
        return [(TARGET_NAME_OPTION, self.server_name)] if self.tls and self.server_name else []

    def metadata(self, role: Role = "client") -> tuple[tuple[str, str], ...]:
        """The call metadata for ``role``: ``authorization: Bearer <token>``, or nothing when
        no token applies."""
        if role not in ("client", "operator"):
            raise ValueError(f"unknown role {role!r}: 'client' or 'operator'")
        token = (self.operator_token or self.token) if role == "operator" else self.token
        return (("authorization", f"Bearer {token}"),) if token else ()


Source: TypeAlias = "FileConfig | Settings | None"
"""What :func:`channel` and :func:`metadata` take: a configuration, settings, or None
(plaintext, no token)."""


def settings(source: Source) -> Settings:
    """``source`` as :class:`Settings` (a configuration's files are read now)."""
    if source is None:
        return Settings()
    if isinstance(source, Settings):
        return source
    return Settings.from_config(source)


@overload
def channel(
    address: str,
    source: Source = ...,
    *,
    options: Iterable[tuple[str, Any]] = ...,
    aio: Literal[False] = ...,
) -> grpc.Channel: ...


@overload
def channel(
    address: str,
    source: Source = ...,
    *,
    options: Iterable[tuple[str, Any]] = ...,
    aio: Literal[True],
) -> grpc.aio.Channel: ...


def channel(
    address: str,
    source: Source = None,
    *,
    options: Iterable[tuple[str, Any]] = (),
    aio: bool = False,
) -> grpc.Channel | grpc.aio.Channel:
    """A channel to ``address`` (``host:port``), secure or plaintext per ``source`` (a
    :class:`~trading_system.config.FileConfig`, :class:`Settings` or None): a blocking
    ``grpc.Channel``, or with ``aio`` a ``grpc.aio.Channel`` (create it inside the event loop
    that will use it). ``options``: further channel options, after :data:`DEFAULT_OPTIONS` and
    the TLS ones. The channel carries no token: pass :func:`metadata` with each call."""
    s = settings(source)
    opts = [*DEFAULT_OPTIONS, *s.options(), *options]
    creds = s.credentials()
    if aio:
        if creds is None:
            return grpc.aio.insecure_channel(address, opts)
        return grpc.aio.secure_channel(address, creds, opts)
    if creds is None:
        return grpc.insecure_channel(address, opts)
    return grpc.secure_channel(address, creds, opts)


def metadata(source: Source, role: Role = "client") -> tuple[tuple[str, str], ...]:
    """The call metadata of ``role`` per ``source`` (see :meth:`Settings.metadata`)."""
    return settings(source).metadata(role)


_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def local_address(host: str, port: int) -> str:
    """``host:port`` to connect to a server bound to ``host`` here: a wildcard host (``0.0.0.0``,
    ``::``, empty, as in a container) becomes the loopback address; IPv6 in brackets."""
    bare = host.strip("[]")
    bare = _WILDCARDS.get(bare, bare)
    return f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"


def monitor_address(cfg: FileConfig) -> str:
    """The monitor's address per ``cfg``: ``server.host:server.monitor_port`` (see
    :func:`local_address`), the default of every command and of the client library."""
    return local_address(cfg.server.host, cfg.server.monitor_port)


_TLS_MARKERS = (
    "handshake failed",
    "certificate_verify",
    "verification check failed",
    "ssl_error",
    "tsi_",
    "wrong_version_number",
    "peer name",
)


def is_tls_failure(details: str | None) -> bool:
    """Does an ``UNAVAILABLE`` status's text say the TLS handshake failed (an untrusted or
    mismatched certificate, a missing client certificate, TLS against plaintext)?"""
    text = (details or "").lower()
    return any(m in text for m in _TLS_MARKERS)


def _host_port(address: str) -> tuple[str, int] | None:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


TLS_PROBE_S = 2.0
"""The longest the diagnosis of a failed call (:func:`tls_problem`) should wait for its own TLS
handshake."""

_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
"""An HTTP/2 client's connection preface and an empty SETTINGS frame: what gRPC sends first."""


def tls_problem(
    address: str, source: Source, details: str | None, timeout: float = 1.0
) -> str | None:
    """Why a call to ``address`` that ended ``UNAVAILABLE`` with ``details`` failed, when the
    reason is TLS: a certificate that did not verify, TLS against a plaintext server, a
    plaintext client against a TLS server, or a client certificate the server requires or
    refused (mutual TLS). None when it is not (or cannot be told to be) about TLS.

    gRPC names verification failures in ``details``; a server that closes the connection says
    only "Socket closed", so then one more connection is made here: a TLS handshake (no
    verification, nothing presented) and the HTTP/2 preface, to see whether the server speaks
    TLS and whether it asks for a client certificate."""
    s = settings(source)
    text = details or ""
    if is_tls_failure(text):
        reason = text.rsplit("last error: ", 1)[-1].removesuffix(": OK")
        if "wrong_version_number" in text.lower():
            return (
                "the server does not speak TLS and this client does (client.tls_ca_file or "
                f"server.tls_cert_file is set): {reason}"
            )
        return f"the TLS handshake failed (the server's certificate or its name): {reason}"
    lowered = text.lower()
    if "socket closed" not in lowered and "connection reset" not in lowered:
        return None
    where = _host_port(address)
    if where is None:
        return None
    host, port = where
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host, port), timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=s.server_name or None) as conn:
                if not s.tls:
                    return (
                        "the server speaks TLS and this client plaintext: set client.tls_ca_file "
                        "(or server.tls_cert_file) in the configuration"
                    )
                conn.settimeout(timeout)
                try:
                    conn.sendall(_H2_PREFACE)
                    answered = conn.recv(1) != b""
                except ssl.SSLError:
                    answered = False  # an alert: certificate required, unknown CA, ...
                except OSError:
                    return None
                if answered:
                    return None
                # The handshake took no certificate from us, and the server hung up without a
                # word: it requires a client certificate (a TLS 1.3 server checks it after the
                # handshake, and gRPC's closes the connection without an alert).
                what = (
                    "none was presented: set client.tls_cert_file and client.tls_key_file"
                    if s.cert is None
                    else "it refused the one presented (client.tls_cert_file)"
                )
                return (
                    "the server requires a client certificate signed by a CA it trusts "
                    f"(mutual TLS): {what}"
                )
    except (OSError, ssl.SSLError):
        return None
    return None
