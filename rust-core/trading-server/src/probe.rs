//! A `grpc.health.v1` `Check` client: what `trading-engine probe` runs (the containers'
//! health checks, `Dockerfile.rust`). One call with one deadline covering the connection and the
//! call; the answer is one of [`Probe`]'s cases, each with its exit status (0 serving, 1 not
//! serving or an unknown service, 3 no answer) and its word for the printed line
//! `HOST:PORT SERVICE WORD`, the same as `trading-system probe` prints.

use std::time::Duration;

use tonic::transport::Channel;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

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
}

impl Probe {
    /// The exit status: 0 serving; 1 not serving, an unknown service or another error; 3 no
    /// answer (unreachable or past the deadline).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Status(ServingStatus::Serving) => 0,
            Self::Unreachable(_) | Self::DeadlineExceeded => 3,
            Self::Status(_) | Self::UnknownService | Self::Failed(..) => 1,
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
        }
    }

    /// Why there is no status, if there is none.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::Unreachable(d) | Self::Failed(_, d) => Some(d),
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

/// One `Check` of `service` on `address` (`HOST:PORT`, plaintext), connection included, within
/// `timeout`.
pub async fn check(address: &str, service: &str, timeout: Duration) -> Probe {
    let call = async {
        let endpoint = Channel::from_shared(format!("http://{address}"))
            .map_err(|e| Probe::Failed(Code::InvalidArgument, format!("bad address: {e}")))?
            .connect_timeout(timeout)
            .timeout(timeout);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| Probe::Unreachable(error_chain(&e)))?;
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .map_err(|s| match s.code() {
                Code::NotFound => Probe::UnknownService,
                Code::Unavailable => Probe::Unreachable(s.message().to_owned()),
                Code::DeadlineExceeded | Code::Cancelled => Probe::DeadlineExceeded,
                code => Probe::Failed(code, s.message().to_owned()),
            })
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Probe::DeadlineExceeded,
        Ok(Err(p)) => p,
        Ok(Ok(r)) => Probe::Status(
            ServingStatus::try_from(r.into_inner().status).unwrap_or(ServingStatus::Unknown),
        ),
    }
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
            Duration::from_millis(2000),
        )
        .await;
        assert!(matches!(p, Probe::Unreachable(_)), "{p:?}");
        assert_eq!(p.exit_code(), 3);
    }
}
