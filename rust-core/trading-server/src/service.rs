//! The `trading.v1.Trading` service (`docs/GRPC.md`): Analyze, Stream, GetSnapshot, GetInfo,
//! GetConfig and UpdateConfig. Every call is authorized (when `server.auth_token` is set),
//! size-checked against `server.max_message_bytes`, and logged as one JSON line.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use chan_core::{EngineConfig, FileConfig};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::{http, Context, Future, Pin, Poll, Service};
use tonic::server::NamedService;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_types::FieldViolation;

use crate::pb::stream_request::Kind;
use crate::pb::trading_server::{Trading, TradingServer};
use crate::sessions::{self, Outcome, SessionState, Sessions, SharedSession};
use crate::{convert, log, pb, status, ENGINE, PROTOCOL, VERSION};

/// What every call shares: the configuration new sessions and `Analyze` start from, the
/// sessions, and the server's limits.
#[derive(Debug)]
struct Shared {
    config: RwLock<EngineConfig>,
    sessions: Sessions,
    max_message_bytes: u64,
    replay_window: usize,
    /// The expected bearer token; `None`: no authentication.
    token: Option<String>,
    started: Instant,
}

/// The `Trading` service.
#[derive(Debug, Clone)]
pub struct TradingService {
    shared: Arc<Shared>,
}

impl TradingService {
    /// A service configured from the file configuration (its engine keys and `server` section).
    pub fn new(cfg: &FileConfig) -> Self {
        let s = &cfg.server;
        Self {
            shared: Arc::new(Shared {
                config: RwLock::new(cfg.engine()),
                sessions: Sessions::default(),
                max_message_bytes: s.max_message_bytes,
                replay_window: usize::try_from(s.replay_window).unwrap_or(usize::MAX),
                token: (!s.auth_token.is_empty()).then(|| s.auth_token.clone()),
                started: Instant::now(),
            }),
        }
    }

    /// The gRPC service: the transport refuses messages beyond twice `server.max_message_bytes`
    /// with `RESOURCE_EXHAUSTED` (larger ones up to that get the documented message from the
    /// calls themselves).
    pub fn into_server(self) -> TransportLimit<TradingServer<TradingService>> {
        let limit =
            usize::try_from(self.shared.max_message_bytes.saturating_mul(2)).unwrap_or(usize::MAX);
        TransportLimit(
            TradingServer::new(self)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(usize::MAX),
        )
    }

    fn config(&self) -> EngineConfig {
        *self.shared.config.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks `authorization: Bearer <token>` when a token is configured.
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(token) = &self.shared.token else {
            return Ok(());
        };
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_at_checked(7)?;
                scheme.eq_ignore_ascii_case("bearer ").then_some(rest)
            });
        match given {
            Some(t) if same(t.as_bytes(), token.as_bytes()) => Ok(()),
            _ => Err(Status::unauthenticated(status::UNAUTHENTICATED)),
        }
    }

    fn check_size(&self, size: usize) -> Result<(), Status> {
        status::check_size(size, self.shared.max_message_bytes)
    }

    /// Authorizes a unary request and checks its size.
    fn admit<T: Message>(&self, request: Request<T>) -> Result<T, Status> {
        self.authorize(&request)?;
        let m = request.into_inner();
        self.check_size(m.encoded_len())?;
        Ok(m)
    }

    fn analyze_now(&self, req: pb::AnalyzeRequest) -> Result<pb::AnalyzeResponse, Status> {
        let cfg = convert::apply_overrides(&self.config(), req.config.as_ref())
            .map_err(|e| status::from_chan(&e))?;
        let bars = convert::bars(req.bars.as_ref()).map_err(|c| status::column_lengths(&c))?;
        let a =
            chan_core::analyze(&bars, &cfg, req.with_macd).map_err(|e| status::from_chan(&e))?;
        Ok(pb::AnalyzeResponse {
            engine: ENGINE.into(),
            analysis: Some(convert::analysis(&a.engine, &a.tail)),
            epoch: 0,
        })
    }

    /// Opens or resumes the session the first message of a stream names.
    fn open(&self, m: pb::StreamRequest) -> Result<(SharedSession, pb::StreamResponse), Status> {
        self.check_size(m.encoded_len())?;
        let Some(Kind::Open(o)) = m.kind else {
            return Err(Status::invalid_argument(
                "the first message of a stream must be open",
            ));
        };
        let name = check_names(&o.symbol, &o.timeframe, "open.")?;
        if o.resume {
            let s = self
                .shared
                .sessions
                .get(&name)
                .ok_or_else(|| not_found(&name))?;
            let answer = sessions::lock(&s).opened(true);
            return Ok((s, answer));
        }
        let cfg = convert::apply_overrides(&self.config(), o.config.as_ref())
            .map_err(|e| status::from_chan(&e))?;
        let state = SessionState::new(name, cfg, o.with_macd, self.shared.replay_window)
            .map_err(|e| status::from_chan(&e))?;
        let answer = state.opened(false);
        Ok((self.shared.sessions.insert(state), answer))
    }

    /// Serves one stream after its open: each bar message under the exactly-once rules.
    async fn run_stream(
        self,
        mut inbound: Streaming<pb::StreamRequest>,
        tx: mpsc::Sender<Result<pb::StreamResponse, Status>>,
    ) {
        let started = Instant::now();
        let first = match inbound.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(s) => {
                let s = status::transport_limit(s);
                log::call("Stream", None, None, started, s.code(), Some(s.message()));
                let _ = tx.send(Err(s)).await;
                return;
            }
        };
        let (session, name) = match self.open(first) {
            Ok((session, answer)) => {
                let name = sessions::lock(&session).name().to_owned();
                log::call("Stream", Some(&name), Some(0), started, Code::Ok, None);
                if tx.send(Ok(answer)).await.is_err() {
                    return;
                }
                (session, name)
            }
            Err(s) => {
                log::call("Stream", None, None, started, s.code(), Some(s.message()));
                let _ = tx.send(Err(s)).await;
                return;
            }
        };
        loop {
            let m = match inbound.message().await {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(s) => {
                    let s = status::transport_limit(s);
                    if s.code() == Code::ResourceExhausted {
                        log::call(
                            "Stream",
                            Some(&name),
                            None,
                            Instant::now(),
                            s.code(),
                            Some(s.message()),
                        );
                    }
                    let _ = tx.send(Err(s)).await;
                    break;
                }
            };
            let started = Instant::now();
            let size = m.encoded_len();
            let ended = |s: Status| {
                log::call(
                    "Stream",
                    Some(&name),
                    None,
                    started,
                    s.code(),
                    Some(s.message()),
                );
                s
            };
            let b = match m.kind {
                Some(Kind::Bar(b)) => b,
                Some(Kind::Open(_)) => {
                    let s = Status::invalid_argument("a stream opens its session once");
                    let _ = tx.send(Err(ended(s))).await;
                    break;
                }
                None => {
                    let s = Status::invalid_argument("a stream message must carry open or bar");
                    let _ = tx.send(Err(ended(s))).await;
                    break;
                }
            };
            if !self.shared.sessions.is_current(&name, &session) {
                let s = Status::aborted(format!(
                    "session {name} was replaced by a new open; open or resume it again"
                ));
                let _ = tx.send(Err(ended(s))).await;
                break;
            }
            let (answer, outcome) = if size as u64 > self.shared.max_message_bytes {
                let e = status::stream_error(
                    Code::ResourceExhausted,
                    status::too_large(size, self.shared.max_message_bytes)
                        .message()
                        .to_owned(),
                );
                let answer = pb::StreamResponse {
                    seq: b.seq,
                    engine: ENGINE.into(),
                    kind: Some(pb::stream_response::Kind::Error(e)),
                    // Engines answer with epoch 0; the monitor sets its own.
                    epoch: 0,
                };
                (answer, Outcome::Rejected(Code::ResourceExhausted))
            } else {
                sessions::lock(&session).handle(&b)
            };
            let (code, message) = match (&outcome, &answer.kind) {
                (Outcome::Rejected(c), Some(pb::stream_response::Kind::Error(e))) => {
                    (*c, Some(e.message.as_str()))
                }
                _ => (Code::Ok, None),
            };
            log::call("Stream", Some(&name), Some(b.seq), started, code, message);
            if tx.send(Ok(answer)).await.is_err() {
                break;
            }
        }
    }
}

/// The generated service with the transport's refusal of oversized unary requests answered as
/// `RESOURCE_EXHAUSTED` ([`status::transport_limit`]; tonic answers those before any handler
/// runs, as a trailers-only response).
#[derive(Debug, Clone)]
pub struct TransportLimit<S>(S);

impl<S: NamedService> NamedService for TransportLimit<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for TransportLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answer = self.0.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            if let Some(s) = Status::from_header_map(response.headers()) {
                if s.code() == Code::OutOfRange {
                    let s = status::transport_limit(s);
                    let headers = response.headers_mut();
                    headers.remove("grpc-status");
                    headers.remove("grpc-message");
                    // A status always fits in headers.
                    let _ = s.add_header(headers);
                }
            }
            Ok(response)
        })
    }
}

/// Compares two tokens in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn not_found(name: &str) -> Status {
    Status::not_found(format!("session {name} not found"))
}

/// Checks a symbol and timeframe (fields `<prefix>symbol`, `<prefix>timeframe`); returns the
/// session name.
fn check_names(symbol: &str, timeframe: &str, prefix: &str) -> Result<String, Status> {
    let mut v = Vec::new();
    if let Err(d) = sessions::check_symbol(symbol) {
        v.push(FieldViolation::new(format!("{prefix}symbol"), d));
    }
    if let Err(d) = sessions::check_timeframe(timeframe) {
        v.push(FieldViolation::new(format!("{prefix}timeframe"), d));
    }
    if v.is_empty() {
        return Ok(sessions::session_name(symbol, timeframe));
    }
    let text: Vec<String> = v
        .iter()
        .map(|x| format!("{}: {}", x.field, x.description))
        .collect();
    Err(status::bad_request(
        format!("invalid session name: {}", text.join("; ")),
        v,
    ))
}

/// Logs a unary call's outcome.
fn logged<T>(
    method: &str,
    session: Option<&str>,
    started: Instant,
    r: Result<T, Status>,
) -> Result<Response<T>, Status> {
    match &r {
        Ok(_) => log::call(method, session, None, started, Code::Ok, None),
        Err(s) => log::call(method, session, None, started, s.code(), Some(s.message())),
    }
    r.map(Response::new)
}

/// Runs CPU-heavy work (whole series) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Status::internal(format!("the call failed: {e}"))))
}

#[tonic::async_trait]
impl Trading for TradingService {
    async fn analyze(
        &self,
        request: Request<pb::AnalyzeRequest>,
    ) -> Result<Response<pb::AnalyzeResponse>, Status> {
        let started = Instant::now();
        let r = match self.admit(request) {
            Ok(req) => {
                let svc = self.clone();
                blocking(move || svc.analyze_now(req)).await
            }
            Err(s) => Err(s),
        };
        logged("Analyze", None, started, r)
    }

    type StreamStream = ReceiverStream<Result<pb::StreamResponse, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<pb::StreamRequest>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        if let Err(s) = self.authorize(&request) {
            log::call(
                "Stream",
                None,
                None,
                Instant::now(),
                s.code(),
                Some(s.message()),
            );
            return Err(s);
        }
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(self.clone().run_stream(request.into_inner(), tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        let started = Instant::now();
        let mut name = None;
        let r = async {
            let req = self.admit(request)?;
            let n = check_names(&req.symbol, &req.timeframe, "")?;
            name = Some(n.clone());
            let s = self.shared.sessions.get(&n).ok_or_else(|| not_found(&n))?;
            blocking(move || {
                let g = sessions::lock(&s);
                Ok(pb::SnapshotResponse {
                    engine: ENGINE.into(),
                    session: n,
                    last_seq: g.last_seq(),
                    analysis: Some(g.analysis()),
                    epoch: 0,
                })
            })
            .await
        }
        .await;
        logged("GetSnapshot", name.as_deref(), started, r)
    }

    async fn get_info(
        &self,
        request: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        let started = Instant::now();
        let r = self.admit(request).map(|_| pb::InfoResponse {
            engine: ENGINE.into(),
            version: VERSION.into(),
            uptime_ms: self.shared.started.elapsed().as_millis() as u64,
            sessions: self.shared.sessions.len() as u32,
            config: Some(convert::config(&self.config())),
            protocol: PROTOCOL.into(),
        });
        logged("GetInfo", None, started, r)
    }

    async fn get_config(
        &self,
        request: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::ConfigResponse>, Status> {
        let started = Instant::now();
        let r = self.admit(request).map(|_| pb::ConfigResponse {
            engine: ENGINE.into(),
            config: Some(convert::config(&self.config())),
        });
        logged("GetConfig", None, started, r)
    }

    async fn update_config(
        &self,
        request: Request<pb::UpdateConfigRequest>,
    ) -> Result<Response<pb::ConfigResponse>, Status> {
        let started = Instant::now();
        let r = self.admit(request).and_then(|req| {
            let mut cfg = self
                .shared
                .config
                .write()
                .unwrap_or_else(|e| e.into_inner());
            *cfg = convert::apply_overrides(&cfg, req.config.as_ref())
                .map_err(|e| status::from_chan(&e))?;
            Ok(pb::ConfigResponse {
                engine: ENGINE.into(),
                config: Some(convert::config(&cfg)),
            })
        });
        logged("UpdateConfig", None, started, r)
    }
}
