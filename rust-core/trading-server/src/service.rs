//! The `trading.v1.Trading` service (`docs/GRPC.md`): Analyze, Stream, `GetSnapshot`, `GetInfo`,
//! `GetConfig` and `UpdateConfig`, and the `trading.v1.Replica` service (`CatchUp`, `CloseSessions`,
//! Apply) the monitor uses. Every call is authorized ([`crate::auth`]), size-checked against
//! `server.max_message_bytes`, and logged as one JSON line.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use chan_core::display::shown;
use chan_core::{ChanError, EngineConfig};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::{http, Context, Future, Pin, Poll, Service};
use tonic::server::NamedService;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_types::FieldViolation;
use trading_config::FileConfig;

use crate::auth::{Role, Tokens};
use crate::pb::replica_server::{Replica, ReplicaServer};
use crate::pb::stream_request::Kind;
use crate::pb::trading_server::{Trading, TradingServer};
use crate::sessions::{self, Attached, Outcome, SessionState, Sessions, Standing};
use crate::{convert, log, pb, status, ENGINE, PROTOCOL, VERSION};

/// What every call shares: the configuration new sessions and `Analyze` start from, the
/// sessions, and the server's limits.
#[derive(Debug)]
struct Shared {
    config: RwLock<EngineConfig>,
    sessions: Sessions,
    max_message_bytes: u64,
    replay_window: usize,
    tokens: Tokens,
    started: Instant,
}

/// The `Trading` service.
#[derive(Debug, Clone)]
pub struct TradingService {
    shared: Arc<Shared>,
}

impl TradingService {
    /// A service configured from the file configuration (its engine keys and `server`
    /// section), with the tokens in force (token files read: [`Tokens::load`]).
    pub fn new(cfg: &FileConfig, tokens: Tokens) -> Self {
        let s = &cfg.server;
        Self {
            shared: Arc::new(Shared {
                config: RwLock::new(cfg.engine()),
                sessions: Sessions::new(usize::try_from(s.max_sessions).unwrap_or(usize::MAX)),
                max_message_bytes: s.max_message_bytes,
                replay_window: usize::try_from(s.replay_window).unwrap_or(usize::MAX),
                tokens,
                started: Instant::now(),
            }),
        }
    }

    /// The `Replica` service over the same sessions, with the same transport limit.
    pub fn replica_server(&self) -> TransportLimit<ReplicaServer<TradingService>> {
        TransportLimit(
            ReplicaServer::new(self.clone())
                .max_decoding_message_size(self.transport_limit())
                .max_encoding_message_size(usize::MAX),
        )
    }

    fn transport_limit(&self) -> usize {
        usize::try_from(self.shared.max_message_bytes.saturating_mul(2)).unwrap_or(usize::MAX)
    }

    /// The gRPC service: the transport refuses messages beyond twice `server.max_message_bytes`
    /// with `RESOURCE_EXHAUSTED` (larger ones up to that get the documented message from the
    /// calls themselves).
    pub fn into_server(self) -> TransportLimit<TradingServer<TradingService>> {
        let limit = self.transport_limit();
        TransportLimit(
            TradingServer::new(self)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(usize::MAX),
        )
    }

    fn config(&self) -> EngineConfig {
        *self
            .shared
            .config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks `authorization: Bearer <token>` for a call of `role` ([`crate::auth`]).
    fn authorize<T>(&self, request: &Request<T>, role: Role) -> Result<(), Status> {
        self.shared.tokens.check(request.metadata(), role)
    }

    fn check_size(&self, size: usize) -> Result<(), Status> {
        status::check_size(size, self.shared.max_message_bytes)
    }

    /// Authorizes a unary request and checks its size.
    fn admit<T: Message>(&self, request: Request<T>, role: Role) -> Result<T, Status> {
        self.authorize(&request, role)?;
        let m = request.into_inner();
        self.check_size(m.encoded_len())?;
        Ok(m)
    }

    fn analyze_now(&self, req: &pb::AnalyzeRequest) -> Result<pb::AnalyzeResponse, Status> {
        let cfg = convert::apply_overrides(&self.config(), req.config.as_ref())
            .map_err(|e| status::from_chan(&e))?;
        let bars = convert::bars(req.bars.as_ref()).map_err(|c| status::column_lengths(&c))?;
        let a =
            chan_core::analyze(&bars, &cfg, req.with_macd).map_err(|e| status::from_chan(&e))?;
        Ok(pb::AnalyzeResponse {
            engine: ENGINE.into(),
            analysis: Some(convert::analysis(&a.engine, &a.tail, &a.higher)),
            epoch: 0,
        })
    }

    /// Opens or resumes the session the first message of a stream names.
    fn open(&self, m: pb::StreamRequest) -> Result<(Attached, pb::StreamResponse), Status> {
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
                .get_attached(&name)
                .ok_or_else(|| not_found(&name))?;
            let answer = sessions::lock(s.session()).opened(true);
            return Ok((s, answer));
        }
        let state = self.new_session(name, &o)?;
        let answer = state.opened(false);
        let attached = self
            .shared
            .sessions
            .insert_attached(state)
            .map_err(|f| Status::resource_exhausted(f.message()))?;
        Ok((attached, answer))
    }

    /// A new session as an open describes it (its configuration overrides applied).
    fn new_session(&self, name: String, o: &pb::OpenSession) -> Result<SessionState, Status> {
        self.new_state(name, o).map_err(|e| status::from_chan(&e))
    }

    fn new_state(&self, name: String, o: &pb::OpenSession) -> Result<SessionState, ChanError> {
        let cfg = convert::apply_overrides(&self.config(), o.config.as_ref())?;
        SessionState::new(name, cfg, o.with_macd, self.shared.replay_window)
    }

    /// One entry of `Replica.CatchUp` (`docs/GRPC.md`): checked and applied on its own, all or
    /// nothing.
    fn catch_up_one(&self, e: pb::SessionCatchUp) -> pb::SessionCaughtUp {
        let o = e.open.unwrap_or_default();
        let name = match names(&o.symbol, &o.timeframe, "open.") {
            Ok(n) => n,
            Err(b) => {
                return pb::SessionCaughtUp {
                    // As much of the name as the error message shows.
                    session: format!("{}/{}", shown(&o.symbol), shown(&o.timeframe)),
                    last_seq: 0,
                    bars: 0,
                    error: Some(bad_name_error(b)),
                };
            }
        };
        let existing = self.shared.sessions.get(&name);
        let standing = |s: &Option<sessions::SharedSession>| {
            s.as_ref().map_or((0, 0), |s| {
                let g = sessions::lock(s);
                (g.last_seq(), g.session().bars() as u64)
            })
        };
        let base = e.base.as_ref().filter(|b| !no_bars(b));
        let result = if e.fresh {
            self.catch_up_fresh(name.clone(), &o, base, e.after_seq, &e.bars)
        } else if base.is_some() {
            Err(base_not_fresh())
        } else {
            match &existing {
                None => Err(status::stream_error(
                    Code::NotFound,
                    not_found_message(&name),
                )),
                Some(s) => {
                    self.shared.sessions.touch(s);
                    let mut g = sessions::lock(s);
                    g.catch_up(e.after_seq, &e.bars)
                        .map(|()| (g.last_seq(), g.session().bars() as u64))
                }
            }
        };
        match result {
            Ok((last_seq, bars)) => pb::SessionCaughtUp {
                session: name,
                last_seq,
                bars,
                error: None,
            },
            Err(error) => {
                let (last_seq, bars) = standing(&existing);
                pb::SessionCaughtUp {
                    session: name,
                    last_seq,
                    bars,
                    error: Some(error),
                }
            }
        }
    }

    /// A fresh session caught up (from `base`, the session's bars before `after_seq`, when
    /// there is one), then put in place of any session of its name.
    fn catch_up_fresh(
        &self,
        name: String,
        o: &pb::OpenSession,
        base: Option<&pb::Bars>,
        after_seq: u64,
        bars: &[pb::BarMessage],
    ) -> Result<(u64, u64), pb::StreamError> {
        let base = convert::bars(base).map_err(|c| status::column_lengths_error(&c, "base"))?;
        if base.is_empty() && after_seq != 0 {
            let description = format!("must be 0 for a fresh session, got {after_seq}");
            return Err(pb::StreamError {
                code: Code::InvalidArgument as i32,
                message: format!("invalid catch-up: after_seq {description}"),
                field_violations: vec![pb::BadRequestFieldViolation {
                    field: "after_seq".into(),
                    description,
                    reason: String::new(),
                    index: -1,
                }],
                expected_seq: 0,
            });
        }
        let mut state = self
            .new_state(name, o)
            .map_err(|e| status::stream_error_from_chan(&e, 1))?;
        state.catch_up_from(&base, after_seq, bars)?;
        let done = (state.last_seq(), state.session().bars() as u64);
        self.shared
            .sessions
            .insert(state)
            .map_err(|f| status::stream_error(Code::ResourceExhausted, f.message()))?;
        Ok(done)
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
        let (attached, name) = match self.open(first) {
            Ok((attached, answer)) => {
                let name = sessions::lock(attached.session()).name().to_owned();
                log::call("Stream", Some(&name), Some(0), started, Code::Ok, None);
                if tx.send(Ok(answer)).await.is_err() {
                    return;
                }
                (attached, name)
            }
            Err(s) => {
                log::call("Stream", None, None, started, s.code(), Some(s.message()));
                let _ = tx.send(Err(s)).await;
                return;
            }
        };
        let session = attached.session();
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
            match self.shared.sessions.standing(&name, session) {
                Standing::Current => self.shared.sessions.touch(session),
                Standing::Replaced => {
                    let s = Status::aborted(format!(
                        "session {} was replaced by a new open; open or resume it again",
                        shown(&name)
                    ));
                    let _ = tx.send(Err(ended(s))).await;
                    break;
                }
                Standing::Closed => {
                    let _ = tx.send(Err(ended(not_found(&name)))).await;
                    break;
                }
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
                sessions::lock(session).handle(&b)
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

/// Requests of `Replica.Apply` with at most this many messages are applied on the async worker
/// that read them (as a stream applies its message); larger ones on the blocking pool, one task
/// per request (a request of thousands of bars must not hold up the other calls' worker).
const INLINE_MESSAGES: usize = 8;

impl TradingService {
    /// Serves one `Replica.Apply` stream: each request's messages applied in order, one answer
    /// per request, in the order of the requests.
    async fn run_apply(
        self,
        mut inbound: Streaming<pb::ApplyRequest>,
        tx: mpsc::Sender<Result<pb::ApplyResponse, Status>>,
    ) {
        loop {
            let req = match inbound.message().await {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(s) => {
                    let s = status::transport_limit(s);
                    // Refusals of the client's bytes are logged; a client gone is not.
                    if matches!(s.code(), Code::InvalidArgument | Code::ResourceExhausted) {
                        log::apply(None, Instant::now(), s.code(), Some(s.message()));
                    }
                    let _ = tx.send(Err(s)).await;
                    break;
                }
            };
            let started = Instant::now();
            let count = req.messages.len();
            let answer = if count <= INLINE_MESSAGES {
                Ok(self.apply_request(req))
            } else {
                let svc = self.clone();
                blocking(move || Ok(svc.apply_request(req))).await
            };
            match answer {
                Ok((answer, refusal)) => {
                    let (code, message) = match &refusal {
                        Some(m) => (Code::ResourceExhausted, Some(m.as_str())),
                        None => (Code::Ok, None),
                    };
                    log::apply(Some(count), started, code, message);
                    if tx.send(Ok(answer)).await.is_err() {
                        break;
                    }
                }
                Err(s) => {
                    log::apply(Some(count), started, s.code(), Some(s.message()));
                    let _ = tx.send(Err(s)).await;
                    break;
                }
            }
        }
    }

    /// One `Replica.Apply` request: its answer, and the size refusal when the request is over
    /// `server.max_message_bytes` (then every message is answered with it in-band, as a stream
    /// answers a message over the limit after its open, and nothing is applied).
    fn apply_request(&self, req: pb::ApplyRequest) -> (pb::ApplyResponse, Option<String>) {
        let size = req.encoded_len();
        if size as u64 > self.shared.max_message_bytes {
            let message = status::too_large(size, self.shared.max_message_bytes)
                .message()
                .to_owned();
            let answers = req
                .messages
                .iter()
                .map(|m| {
                    let seq = m.bar.as_ref().map_or(0, |b| b.seq);
                    in_band(
                        seq,
                        status::stream_error(Code::ResourceExhausted, message.clone()),
                    )
                })
                .collect();
            return (pb::ApplyResponse { answers }, Some(message));
        }
        let answers = req
            .messages
            .into_iter()
            .map(|m| self.apply_one(m))
            .collect();
        (pb::ApplyResponse { answers }, None)
    }

    /// One message of `Replica.Apply`: applied as the same bar message on a stream of the
    /// session (attached to nothing), the session locked only meanwhile.
    fn apply_one(&self, m: pb::SessionMessage) -> pb::StreamResponse {
        // Absent messages read as their defaults (proto3): no name is a bad name, no bar
        // message is number 0.
        let b = m.bar.unwrap_or_default();
        let n = m.session.unwrap_or_default();
        let name = match names(&n.symbol, &n.timeframe, "open.") {
            Ok(name) => name,
            Err(bad) => return in_band(b.seq, bad_name_error(bad)),
        };
        let Some(s) = self.shared.sessions.get(&name) else {
            return in_band(
                b.seq,
                status::stream_error(Code::NotFound, not_found_message(&name)),
            );
        };
        self.shared.sessions.touch(&s);
        let (answer, _) = sessions::lock(&s).handle(&b);
        answer
    }
}

/// A stream answer carrying an in-band error.
fn in_band(seq: u64, e: pb::StreamError) -> pb::StreamResponse {
    pb::StreamResponse {
        seq,
        engine: ENGINE.into(),
        // Engines answer with epoch 0; the monitor sets its own.
        epoch: 0,
        kind: Some(pb::stream_response::Kind::Error(e)),
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

/// Whether a `Bars` message carries no value at all (no base: a fresh catch-up from nothing).
fn no_bars(b: &pb::Bars) -> bool {
    b.time.is_empty()
        && b.open.is_empty()
        && b.high.is_empty()
        && b.low.is_empty()
        && b.close.is_empty()
        && b.volume.is_empty()
}

/// A base on a catch-up of a session that is not fresh (the message is the description).
fn base_not_fresh() -> pb::StreamError {
    let message = "invalid catch-up: base is only for a fresh session";
    pb::StreamError {
        code: Code::InvalidArgument as i32,
        message: message.into(),
        field_violations: vec![pb::BadRequestFieldViolation {
            field: "base".into(),
            description: message.into(),
            reason: String::new(),
            index: -1,
        }],
        expected_seq: 0,
    }
}

fn not_found(name: &str) -> Status {
    Status::not_found(not_found_message(name))
}

fn not_found_message(name: &str) -> String {
    format!("session {} not found", shown(name))
}

/// A session name that breaks the rules: its status message and field violations.
struct BadName {
    message: String,
    violations: Vec<FieldViolation>,
}

/// Checks a symbol and timeframe (fields `<prefix>symbol`, `<prefix>timeframe`); returns the
/// session name.
fn names(symbol: &str, timeframe: &str, prefix: &str) -> Result<String, BadName> {
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
    Err(BadName {
        message: format!("invalid session name: {}", text.join("; ")),
        violations: v,
    })
}

/// A bad session name as an in-band error (`Replica.CatchUp`).
fn bad_name_error(b: BadName) -> pb::StreamError {
    pb::StreamError {
        code: Code::InvalidArgument as i32,
        message: b.message,
        field_violations: b
            .violations
            .into_iter()
            .map(|v| pb::BadRequestFieldViolation {
                field: v.field,
                description: v.description,
                reason: String::new(),
                index: -1,
            })
            .collect(),
        expected_seq: 0,
    }
}

/// [`names`] with a refusal as a unary status.
fn check_names(symbol: &str, timeframe: &str, prefix: &str) -> Result<String, Status> {
    names(symbol, timeframe, prefix).map_err(|b| status::bad_request(b.message, b.violations))
}

/// The answer of `GetConfig` and `UpdateConfig`.
fn config_response(c: &EngineConfig) -> pb::ConfigResponse {
    let config = convert::config(c);
    pb::ConfigResponse {
        engine: ENGINE.into(),
        config_version: convert::config_version(&config),
        config: Some(config),
    }
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
        let r = match self.admit(request, Role::Trading) {
            Ok(req) => {
                let svc = self.clone();
                blocking(move || svc.analyze_now(&req)).await
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
        if let Err(s) = self.authorize(&request, Role::Trading) {
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
            let req = self.admit(request, Role::Trading)?;
            let n = check_names(&req.symbol, &req.timeframe, "")?;
            name = Some(n.clone());
            let s = self.shared.sessions.get(&n).ok_or_else(|| not_found(&n))?;
            self.shared.sessions.touch(&s);
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
        let r = self.admit(request, Role::Trading).map(|_| {
            let config = convert::config(&self.config());
            pb::InfoResponse {
                engine: ENGINE.into(),
                version: VERSION.into(),
                uptime_ms: self.shared.started.elapsed().as_millis() as u64,
                sessions: self.shared.sessions.len() as u32,
                config_version: convert::config_version(&config),
                config: Some(config),
                protocol: PROTOCOL.into(),
            }
        });
        logged("GetInfo", None, started, r)
    }

    async fn get_config(
        &self,
        request: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::ConfigResponse>, Status> {
        let started = Instant::now();
        let r = self
            .admit(request, Role::Trading)
            .map(|_| config_response(&self.config()));
        logged("GetConfig", None, started, r)
    }

    async fn update_config(
        &self,
        request: Request<pb::UpdateConfigRequest>,
    ) -> Result<Response<pb::ConfigResponse>, Status> {
        let started = Instant::now();
        let r = self.admit(request, Role::Admin).and_then(|req| {
            let mut cfg = self
                .shared
                .config
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *cfg = convert::apply_overrides(&cfg, req.config.as_ref())
                .map_err(|e| status::from_chan(&e))?;
            Ok(config_response(&cfg))
        });
        logged("UpdateConfig", None, started, r)
    }
}

#[tonic::async_trait]
impl Replica for TradingService {
    async fn catch_up(
        &self,
        request: Request<pb::CatchUpRequest>,
    ) -> Result<Response<pb::CatchUpResponse>, Status> {
        let started = Instant::now();
        let r = match self.admit(request, Role::Admin) {
            Ok(req) => {
                let counts = (
                    req.sessions.len(),
                    req.sessions
                        .iter()
                        .map(|e| e.bars.len() + e.base.as_ref().map_or(0, |b| b.time.len()))
                        .sum::<usize>(),
                );
                let svc = self.clone();
                let answer = blocking(move || {
                    Ok(pb::CatchUpResponse {
                        engine: ENGINE.into(),
                        sessions: req
                            .sessions
                            .into_iter()
                            .map(|e| svc.catch_up_one(e))
                            .collect(),
                    })
                })
                .await;
                (Some(counts), answer)
            }
            Err(s) => (None, Err(s)),
        };
        let (counts, r) = r;
        let (code, message) = match &r {
            Ok(_) => (Code::Ok, None),
            Err(s) => (s.code(), Some(s.message())),
        };
        log::batch("CatchUp", counts, started, code, message);
        r.map(Response::new)
    }

    type ApplyStream = ReceiverStream<Result<pb::ApplyResponse, Status>>;

    async fn apply(
        &self,
        request: Request<Streaming<pb::ApplyRequest>>,
    ) -> Result<Response<Self::ApplyStream>, Status> {
        if let Err(s) = self.authorize(&request, Role::Admin) {
            log::apply(None, Instant::now(), s.code(), Some(s.message()));
            return Err(s);
        }
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(self.clone().run_apply(request.into_inner(), tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn close_sessions(
        &self,
        request: Request<pb::CloseSessionsRequest>,
    ) -> Result<Response<pb::CloseSessionsResponse>, Status> {
        let started = Instant::now();
        let r = self.admit(request, Role::Admin).map(|req| {
            let names: Vec<String> = req
                .sessions
                .iter()
                .map(|n| sessions::session_name(&n.symbol, &n.timeframe))
                .collect();
            let (closed, left) = self.shared.sessions.close(names.iter().map(String::as_str));
            pb::CloseSessionsResponse {
                engine: ENGINE.into(),
                closed: closed as u32,
                sessions: left as u32,
            }
        });
        logged("CloseSessions", None, started, r)
    }
}
