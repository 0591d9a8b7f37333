//! Binding, TLS and serving (`docs/GRPC.md`, "Servers"). [`EngineServer::bind`] loads the TLS
//! files and binds `server.host` (no `SO_REUSEPORT`: a port in use is an error);
//! [`EngineServer::serve`] serves until the shutdown future completes, then shuts down
//! gracefully: health `NOT_SERVING` first, no new connections or calls, in-flight calls drained
//! for up to `server.shutdown_grace_ms`.
//!
//! With `server.health_port` set, a second listener on `server.host:health_port` serves
//! `grpc.health.v1.Health` alone, plaintext and without tokens (the kubelet's native gRPC probe
//! speaks no TLS): the same [`HealthState`] as the main port, so both show `NOT_SERVING` from the
//! start of a shutdown; any other call there is `UNIMPLEMENTED`. It stops with the server.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use chan_core::ChanError;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::pb::health_check_response::ServingStatus;
use trading_config::FileConfig;
use trading_config::ServerConfig;

use crate::auth::Tokens;
use crate::health::HealthState;
use crate::service::TradingService;
use crate::SERVICE_NAME;

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A configuration key is wrong.
    #[error(transparent)]
    Config(#[from] ChanError),
    /// The settings do not fit together (TLS files given in part).
    #[error("{0}")]
    Settings(String),
    /// The address cannot be bound (the port is in use, the host unknown).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    /// A TLS file cannot be read.
    #[error("reading {key} {path:?}: {source}")]
    Read {
        key: &'static str,
        path: String,
        source: std::io::Error,
    },
    /// The transport failed (bad TLS material, a serving error).
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A bound server, ready to serve.
#[derive(Debug)]
pub struct EngineServer {
    cfg: FileConfig,
    tls: Option<ServerTlsConfig>,
    tokens: Tokens,
    listener: TcpListener,
    /// `server.health_port`'s listener, when set.
    health: Option<TcpListener>,
}

fn read(key: &'static str, path: &str) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|source| ServerError::Read {
        key,
        path: path.to_owned(),
        source,
    })
}

/// The TLS configuration of the `server` section: none, TLS, or mutual TLS.
fn tls_config(s: &ServerConfig) -> Result<Option<ServerTlsConfig>, ServerError> {
    let (cert, key, ca) = (&s.tls_cert_file, &s.tls_key_file, &s.tls_client_ca_file);
    if cert.is_empty() != key.is_empty() {
        return Err(ServerError::Settings(
            "server.tls_cert_file and server.tls_key_file go together: set both or neither".into(),
        ));
    }
    if cert.is_empty() {
        if !ca.is_empty() {
            return Err(ServerError::Settings(
                "server.tls_client_ca_file needs server.tls_cert_file and server.tls_key_file"
                    .into(),
            ));
        }
        return Ok(None);
    }
    let identity = Identity::from_pem(
        read("server.tls_cert_file", cert)?,
        read("server.tls_key_file", key)?,
    );
    let mut tls = ServerTlsConfig::new().identity(identity);
    if !ca.is_empty() {
        tls = tls.client_ca_root(Certificate::from_pem(read(
            "server.tls_client_ca_file",
            ca,
        )?));
    }
    Ok(Some(tls))
}

/// `server.health_port` is the server's own port, `port`.
fn health_port_clash(port: u16) -> ServerError {
    ServerError::Settings(format!(
        "server.health_port and the server's own port are both {port}: the health port must \
         be another one"
    ))
}

/// Binds `server.host:server.health_port` when it is set; `main` is the server's main
/// listener, whose port the health port must not be.
async fn bind_health(
    s: &ServerConfig,
    main: &TcpListener,
) -> Result<Option<TcpListener>, ServerError> {
    if s.health_port == 0 {
        return Ok(None);
    }
    let port = u16::try_from(s.health_port).map_err(|_| {
        ServerError::Settings(format!(
            "server.health_port {} is not a port",
            s.health_port
        ))
    })?;
    if main.local_addr().is_ok_and(|a| a.port() == port) {
        return Err(health_port_clash(port));
    }
    bind(&s.host, port).await.map(Some)
}

/// Binds `host:port` (port 0: any free port).
pub async fn bind(host: &str, port: u16) -> Result<TcpListener, ServerError> {
    TcpListener::bind((host, port))
        .await
        .map_err(|source| ServerError::Bind {
            addr: format!("{host}:{port}"),
            source,
        })
}

impl EngineServer {
    /// Checks the configuration, loads the TLS files and binds `server.host` on `port` (else
    /// `server.rust_port`).
    pub async fn bind(cfg: FileConfig, port: Option<u16>) -> Result<Self, ServerError> {
        cfg.validate()?;
        let tls = tls_config(&cfg.server)?;
        let tokens = Tokens::load(&cfg.server)?;
        let port = match port {
            Some(p) => p,
            None => u16::try_from(cfg.server.rust_port).map_err(|_| {
                ServerError::Settings(format!(
                    "server.rust_port {} is not a port",
                    cfg.server.rust_port
                ))
            })?,
        };
        if port != 0 && u32::from(port) == cfg.server.health_port {
            // Said before binding: the second bind would only say "in use".
            return Err(health_port_clash(port));
        }
        let listener = bind(&cfg.server.host, port).await?;
        let health = bind_health(&cfg.server, &listener).await?;
        Ok(Self {
            cfg,
            tls,
            tokens,
            listener,
            health,
        })
    }

    /// The address it listens on (with port 0, the port it got).
    ///
    /// # Panics
    ///
    /// Only if the operating system cannot name a bound socket's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The address of the health-only listener (`server.health_port`), when it is set.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then shuts down gracefully (module documentation).
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let grace = Duration::from_millis(self.cfg.server.shutdown_grace_ms);
        let health = HealthState::default();
        health.set("", ServingStatus::Serving);
        health.set(SERVICE_NAME, ServingStatus::Serving);
        let addr = self.local_addr();
        let health_addr = self.health_addr();
        let mut builder = Server::builder();
        let tls = self.tls.is_some();
        if let Some(t) = self.tls {
            builder = builder.tls_config(t)?;
        }
        let service = TradingService::new(&self.cfg, self.tokens.clone());
        let router = builder
            .add_service(health.service())
            .add_service(service.replica_server())
            .add_service(service.into_server());
        let (stop, mut stopped) = watch::channel(false);
        // The health-only listener: no TLS, no token check, the one health service (the same
        // state), stopped by the same signal.
        let health_only = self.health.map(|listener| {
            let mut stopped = stop.subscribe();
            Server::builder()
                .add_service(health.service())
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    },
                )
        });
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let main = router.serve_with_incoming_shutdown(incoming, async move {
            let _ = stopped.wait_for(|s| *s).await;
        });
        let serving = async move {
            match health_only {
                Some(h) => tokio::try_join!(main, h).map(|_| ()),
                None => main.await,
            }
        };
        tokio::pin!(serving);
        tracing::info!(
            message = "serving",
            addr = %addr,
            health_addr = health_addr.map(|a| a.to_string()),
            tls,
            mutual_tls = !self.cfg.server.tls_client_ca_file.is_empty(),
            auth = self.tokens.any(),
            operator = self.tokens.has_operator(),
            version = crate::VERSION,
        );
        tokio::select! {
            r = &mut serving => return r.map_err(Into::into),
            () = shutdown => {}
        }
        tracing::info!(
            message = "shutting down: health NOT_SERVING, draining in-flight calls",
            grace_ms = self.cfg.server.shutdown_grace_ms,
        );
        health.set_all(ServingStatus::NotServing);
        health.close();
        stop.send_replace(true);
        if let Ok(r) = tokio::time::timeout(grace, &mut serving).await {
            r?;
        } else {
            tracing::warn!(
                message = "shutdown grace period over: calls still running are cut off",
                grace_ms = self.cfg.server.shutdown_grace_ms,
            );
        }
        tracing::info!(message = "stopped");
        Ok(())
    }
}

/// Completes on SIGTERM or SIGINT. The handlers are installed when this is called (before the
/// server says it listens), so an early signal is not lost.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(message = "signal received", signal = name);
    })
}

/// Serves `cfg` on `listener` until `shutdown` completes (for embedding and tests; TLS and the
/// rest as [`EngineServer`]).
pub async fn serve(
    cfg: FileConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    cfg.validate()?;
    let tls = tls_config(&cfg.server)?;
    let tokens = Tokens::load(&cfg.server)?;
    let health = bind_health(&cfg.server, &listener).await?;
    EngineServer {
        cfg,
        tls,
        tokens,
        listener,
        health,
    }
    .serve(shutdown)
    .await
}
