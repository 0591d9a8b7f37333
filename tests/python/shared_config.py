"""One configuration file for a whole TLS stack, as compose mounts it: the servers read
``server.tls_*`` from it and every client (commands, probes, the client library) reads the
``client`` section and the tokens from the same file. Certificates made at run time
(``test_server_python._pki``)."""

from __future__ import annotations

from pathlib import Path

from test_server_python import Pki, _pki


def write(tmp: Path, pki: Pki, mutual: bool, extra: str = "") -> Path:
    """``tmp/shared.yaml``: the server's certificate and key; with ``mutual`` the client CA it
    requires, and the client's certificate and key; the CA every client trusts. ``extra``:
    more YAML lines (other sections)."""
    f = pki.files
    lines = [
        "server:",
        f"  tls_cert_file: {f['cert']}",
        f"  tls_key_file: {f['key']}",
        "client:",
        f"  tls_ca_file: {f['ca']}",
    ]
    if mutual:
        cert, key = tmp / "client.pem", tmp / "client.key"
        cert.write_bytes(pki.client[0])
        key.write_bytes(pki.client[1])
        lines.insert(3, f"  tls_client_ca_file: {f['ca']}")
        lines += [f"  tls_cert_file: {cert}", f"  tls_key_file: {key}"]
    path = tmp / "shared.yaml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def pki(tmp: Path) -> Pki:
    """A fresh CA with server, client and stranger certificates under ``tmp``."""
    tmp.mkdir(parents=True, exist_ok=True)
    return _pki(tmp)
