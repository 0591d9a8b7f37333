//! A `grpc.health.v1` `Check` client: what `trading-engine probe` runs (the containers'
//! health checks, `Dockerfile.rust`). One call with one deadline covering the connection and the
//! call; the answer is one of [`Probe`]'s cases, each with its exit status (0 serving, 1 not
//! serving or an unknown service, 3 no answer, 4 a TLS failure) and its word for the printed
//! line `HOST:PORT SERVICE WORD`, the same as `trading-system probe` prints. The connection
//! follows the configuration's `client` section ([`client_tls`]).

use std::time::Duration;

use chan_core::ChanError;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use trading_config::FileConfig;

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The server answered with this status (`SERVING`, `NOT_SERVING`, ...).
    Status(ServingStatus),
    /// The server does not know the service (`NOT_FOUND`).
    UnknownService,
    /// No answer: the connection failed or the server is unavailable.
    Unreachable(String),
    /// No answer within the deadline.
    DeadlineExceeded,
    /// The server answered the call with another error (no health service, a bad address ...).
    Failed(Code, String),
    /// TLS failed: a certificate not trusted or refused, a name that does not match, or TLS on
    /// one side only.
    TlsFailure(String),
}

impl Probe {
    /// The exit status: 0 serving; 1 not serving, an unknown service or another error; 3 no
    /// answer (unreachable or past the deadline).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Status(ServingStatus::Serving) => 0,
            Self::Unreachable(_) | Self::DeadlineExceeded => 3,
            Self::Status(_) | Self::UnknownService | Self::Failed(..) => 1,
            Self::TlsFailure(_) => 4,
        }
    }

    /// The status word of the printed line.
    pub fn word(&self) -> String {
        match self {
            Self::Status(s) => s.as_str_name().to_owned(),
            Self::UnknownService => "SERVICE_UNKNOWN".into(),
            Self::Unreachable(_) => "UNREACHABLE".into(),
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED".into(),
            Self::Failed(code, _) => format!("ERROR_{}", code_name(*code)),
            Self::TlsFailure(_) => "TLS_FAILURE".into(),
        }
    }

    /// Why there is no status, if there is none.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::Unreachable(d) | Self::Failed(_, d) | Self::TlsFailure(d) => Some(d),
            _ => None,
        }
    }
}

/// The gRPC code's canonical name (`UNAVAILABLE`, `PERMISSION_DENIED` ...).
fn code_name(code: Code) -> String {
    format!("{code:?}")
        .chars()
        .enumerate()
        .flat_map(|(i, c)| {
            let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
            sep.into_iter()
                .chain(std::iter::once(c.to_ascii_uppercase()))
        })
        .collect()
}

/// The printed name of a service: the empty name (the whole server) as `""`.
pub fn service_label(service: &str) -> &str {
    if service.is_empty() {
        "\"\""
    } else {
        service
    }
}

/// `host:port` to connect to for a server configured to listen on `host`: a wildcard address
/// (`0.0.0.0`, `::`, as in a container) is probed on the loopback address.
pub fn local_address(host: &str, port: u16) -> String {
    match host.trim_start_matches('[').trim_end_matches(']') {
        "" | "0.0.0.0" => format!("127.0.0.1:{port}"),
        "::" => format!("[::1]:{port}"),
        h if h.contains(':') => format!("[{h}]:{port}"),
        h => format!("{h}:{port}"),
    }
}

fn client_error(key: &str, message: String) -> ChanError {
    ChanError::Config {
        key: key.into(),
        message,
    }
}

fn read_pem(key: &str, path: &str) -> Result<Vec<u8>, ChanError> {
    std::fs::read(path).map_err(|e| client_error(key, format!("cannot read {path}: {e}")))
}

/// How clients connect by the configuration (`client` section): TLS when `client.tls_ca_file`
/// or `server.tls_cert_file` is set, trusting that CA (else the system's roots), presenting
/// `client.tls_cert_file` + `client.tls_key_file` (mutual TLS), verifying
/// `client.tls_server_name` (default: the host). `None`: plaintext. The files are read now.
pub fn client_tls(cfg: &FileConfig) -> Result<Option<ClientTlsConfig>, ChanError> {
    let c = &cfg.client;
    if c.tls_cert_file.is_empty() != c.tls_key_file.is_empty() {
        let key = if c.tls_cert_file.is_empty() {
            "client.tls_cert_file"
        } else {
            "client.tls_key_file"
        };
        return Err(client_error(
            key,
            "client.tls_cert_file and client.tls_key_file go together: set both or neither".into(),
        ));
    }
    if c.tls_ca_file.is_empty() && cfg.server.tls_cert_file.is_empty() {
        return Ok(None);
    }
    let mut tls = ClientTlsConfig::new();
    tls = if c.tls_ca_file.is_empty() {
        tls.with_native_roots()
    } else {
        tls.ca_certificate(Certificate::from_pem(read_pem(
            "client.tls_ca_file",
            &c.tls_ca_file,
        )?))
    };
    if !c.tls_cert_file.is_empty() {
        tls = tls.identity(Identity::from_pem(
            read_pem("client.tls_cert_file", &c.tls_cert_file)?,
            read_pem("client.tls_key_file", &c.tls_key_file)?,
        ));
    }
    if !c.tls_server_name.is_empty() {
        tls = tls.domain_name(c.tls_server_name.clone());
    }
    Ok(Some(tls))
}

/// Words of a connection error that mean the TLS handshake failed (rustls' and tonic's).
const TLS_MARKERS: [&str; 8] = [
    "certificate",
    "handshake",
    "corrupt message",
    "tls",
    "alert",
    "peer is incompatible",
    "unknownissuer",
    "not valid for name",
];

fn is_tls_error(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    TLS_MARKERS.iter().any(|m| t.contains(m))
}

/// Whether the server at `address` speaks TLS: a TLS connection to it gets as far as the
/// server's certificate (not trusted here, or trusted: either way the server sent one). A
/// plaintext server answers the handshake with bytes that are not TLS.
async fn speaks_tls(address: &str, timeout: Duration) -> bool {
    let tls = ClientTlsConfig::new().with_native_roots();
    let Ok(endpoint) = Channel::from_shared(format!("https://{address}")) else {
        return false;
    };
    let Ok(endpoint) = endpoint.connect_timeout(timeout).tls_config(tls) else {
        return false;
    };
    match endpoint.connect().await {
        Ok(_) => true,
        Err(e) => error_chain(&e).to_ascii_lowercase().contains("certificate"),
    }
}

/// One `Check` of `service` on `address` (`HOST:PORT`; TLS when `tls` is given), connection
/// included, within `timeout`.
pub async fn check(
    address: &str,
    service: &str,
    timeout: Duration,
    tls: Option<ClientTlsConfig>,
) -> Probe {
    let secure = tls.is_some();
    let call = async {
        let scheme = if secure { "https" } else { "http" };
        let mut endpoint = Channel::from_shared(format!("{scheme}://{address}"))
            .map_err(|e| Probe::Failed(Code::InvalidArgument, format!("bad address: {e}")))?
            .connect_timeout(timeout)
            .timeout(timeout);
        if let Some(t) = tls {
            endpoint = endpoint
                .tls_config(t)
                .map_err(|e| Probe::TlsFailure(error_chain(&e)))?;
        }
        let channel = endpoint.connect().await.map_err(|e| {
            let text = error_chain(&e);
            if secure && is_tls_error(&text) {
                Probe::TlsFailure(text)
            } else {
                Probe::Unreachable(text)
            }
        })?;
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .map_err(|s| match s.code() {
                Code::NotFound => Probe::UnknownService,
                // Under mutual TLS (TLS 1.3) a refused client certificate shows only on the
                // first call: the alert is among the status's causes.
                _ if secure && is_tls_error(&error_chain(&s)) => Probe::TlsFailure(error_chain(&s)),
                Code::Unavailable => Probe::Unreachable(s.message().to_owned()),
                Code::DeadlineExceeded | Code::Cancelled => Probe::DeadlineExceeded,
                code => Probe::Failed(code, s.message().to_owned()),
            })
    };
    let found = match tokio::time::timeout(timeout, call).await {
        Err(_) => Probe::DeadlineExceeded,
        Ok(Err(p)) => p,
        Ok(Ok(r)) => Probe::Status(
            ServingStatus::try_from(r.into_inner().status).unwrap_or(ServingStatus::Unknown),
        ),
    };
    // A plaintext probe of a TLS server fails as a broken connection: say why.
    let broken = matches!(&found, Probe::Unreachable(d) if !d.contains("refused"))
        || matches!(found, Probe::Failed(..));
    if !secure && broken {
        let told = tokio::time::timeout(timeout, speaks_tls(address, timeout)).await;
        if told == Ok(true) {
            return Probe::TlsFailure(
                "the server speaks TLS and this client does not (set client.tls_ca_file, or \
                 server.tls_cert_file)"
                    .into(),
            );
        }
    }
    found
}

/// An error with its causes (`transport error: ...: Connection refused`), each said once.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_words() {
        let cases = [
            (Probe::Status(ServingStatus::Serving), 0, "SERVING"),
            (Probe::Status(ServingStatus::NotServing), 1, "NOT_SERVING"),
            (Probe::Status(ServingStatus::Unknown), 1, "UNKNOWN"),
            (Probe::UnknownService, 1, "SERVICE_UNKNOWN"),
            (Probe::Unreachable("refused".into()), 3, "UNREACHABLE"),
            (Probe::DeadlineExceeded, 3, "DEADLINE_EXCEEDED"),
            (
                Probe::Failed(Code::PermissionDenied, String::new()),
                1,
                "ERROR_PERMISSION_DENIED",
            ),
            (Probe::TlsFailure("x".into()), 4, "TLS_FAILURE"),
        ];
        for (probe, code, word) in cases {
            assert_eq!((probe.exit_code(), probe.word().as_str()), (code, word));
        }
    }

    #[test]
    fn wildcard_hosts_are_probed_on_loopback() {
        assert_eq!(local_address("0.0.0.0", 50051), "127.0.0.1:50051");
        assert_eq!(local_address("::", 1), "[::1]:1");
        assert_eq!(local_address("[::]", 1), "[::1]:1");
        assert_eq!(local_address("::1", 2), "[::1]:2");
        assert_eq!(local_address("example.org", 3), "example.org:3");
        assert_eq!(service_label(""), "\"\"");
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        // A port just freed: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = check(
            &format!("127.0.0.1:{port}"),
            "",
            Duration::from_secs(2),
            None,
        )
        .await;
        assert!(matches!(p, Probe::Unreachable(_)), "{p:?}");
        assert_eq!(p.exit_code(), 3);
    }
}
