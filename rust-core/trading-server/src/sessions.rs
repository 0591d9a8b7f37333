//! Streaming sessions (`docs/GRPC.md`, "Streams: exactly once"). A session is named
//! `<symbol>/<timeframe>` and lives in the server until it is replaced or the server stops; a
//! stream is only a connection to it. Each bar message carries a sequence number; with `L` the
//! last applied one, `L + 1` is applied, a duplicate gets its cached answer again (for the last
//! `server.replay_window` numbers), a different payload under an applied number is `ABORTED`,
//! and a gap (or 0) is `FAILED_PRECONDITION` naming `L + 1`. A rejected message consumes nothing.
//!
//! The store holds at most `server.max_sessions`: one more closes the least recently used
//! session with no stream attached (else it is refused with `RESOURCE_EXHAUSTED`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chan_core::display::shown;
use chan_core::{Bar, BarOp, ChanError, EngineConfig, Session};
use tonic::Code;

use crate::{convert, pb, status, ENGINE};

/// Checks a symbol: 1–64 characters of `A-Z a-z 0-9 . _ : / -`.
pub fn check_symbol(s: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "symbol \"{}\" must be 1 to 64 characters of A-Z a-z 0-9 . _ : / -",
            shown(s)
        ))
    }
}

/// Checks a timeframe: a positive integer of at most 4 digits, then one of `s m h d w M`.
pub fn check_timeframe(s: &str) -> Result<(), String> {
    // Split before the last character, not the last byte: a multi-byte last character must be
    // refused, not split (which would panic).
    let ok = match s.char_indices().last().map(|(n, _)| s.split_at(n)) {
        Some((num, unit)) => {
            (1..=4).contains(&num.len())
                && num.bytes().all(|b| b.is_ascii_digit())
                && num.bytes().any(|b| b != b'0')
                && matches!(unit, "s" | "m" | "h" | "d" | "w" | "M")
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "timeframe \"{}\" must be a positive number of at most 4 digits followed by one of \
             s m h d w M (1m, 15m, 4h, 1d, 1w, 1M)",
            shown(s)
        ))
    }
}

/// The session name `<symbol>/<timeframe>`.
pub fn session_name(symbol: &str, timeframe: &str) -> String {
    format!("{symbol}/{timeframe}")
}

/// A bar message's payload as it was applied: the op and the bar, bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Payload {
    op: i32,
    bar: Option<[u64; 6]>,
}

impl Payload {
    fn of(m: &pb::BarMessage) -> Self {
        Self {
            op: m.op,
            bar: m.bar.as_ref().map(|b| {
                [
                    b.time.cast_unsigned(),
                    b.open.to_bits(),
                    b.high.to_bits(),
                    b.low.to_bits(),
                    b.close.to_bits(),
                    b.volume.to_bits(),
                ]
            }),
        }
    }
}

/// What happened to one bar message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied: the answer carries the update.
    Applied,
    /// A duplicate of an applied message: its cached answer, sent again.
    Replayed,
    /// Not applied: the answer carries a `StreamError` with this code.
    Rejected(Code),
}

/// One session: the core's incremental session, its configuration, the last applied sequence
/// number and the answers of the last `window` applied messages.
#[derive(Debug)]
pub struct SessionState {
    name: String,
    session: Session,
    last_seq: u64,
    window: usize,
    /// The answers of messages `last_seq - answers.len() + 1 ..= last_seq`, in order.
    answers: VecDeque<(Payload, pb::StreamResponse)>,
}

impl SessionState {
    /// A new, empty session.
    pub fn new(
        name: String,
        cfg: EngineConfig,
        with_macd: bool,
        window: usize,
    ) -> Result<Self, ChanError> {
        Ok(Self {
            name,
            session: Session::new(cfg, with_macd)?,
            last_seq: 0,
            window: window.max(1),
            answers: VecDeque::new(),
        })
    }

    /// `<symbol>/<timeframe>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last applied sequence number (0: none).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The core session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The answer to an open (or resume) of this session.
    pub fn opened(&self, resumed: bool) -> pb::StreamResponse {
        response(
            0,
            pb::stream_response::Kind::Opened(pb::Opened {
                session: self.name.clone(),
                last_seq: self.last_seq,
                bars: self.session.bars() as u64,
                resumed,
                config: Some(convert::config(self.session.engine().config())),
            }),
        )
    }

    /// The analysis of the session's bars (equal to an `Analyze` of them with its configuration).
    pub fn analysis(&self) -> pb::Analysis {
        let (engine, tail) = (self.session.engine(), self.session.tail());
        convert::analysis(engine, tail, &self.session.higher())
    }

    /// Handles one bar message under the exactly-once rules.
    pub fn handle(&mut self, m: &pb::BarMessage) -> (pb::StreamResponse, Outcome) {
        let seq = m.seq;
        let expected = self.last_seq + 1;
        if seq == 0 || seq > expected {
            return rejected_seq(seq, expected);
        }
        if seq < expected {
            let first = self.last_seq + 1 - self.answers.len() as u64;
            if seq < first {
                return rejected_seq(seq, expected);
            }
            let (payload, answer) = &self.answers[(seq - first) as usize];
            if *payload == Payload::of(m) {
                return (answer.clone(), Outcome::Replayed);
            }
            return error(
                seq,
                status::stream_error(
                    Code::Aborted,
                    format!("sequence {seq} was applied with a different bar"),
                ),
            );
        }
        let Some(b) = &m.bar else {
            return error(seq, no_bar(seq));
        };
        let bar = convert::bar(b);
        let result = match pb::Op::try_from(m.op) {
            Ok(pb::Op::Append) => self.session.append(bar),
            Ok(pb::Op::ReplaceLast) => self.session.replace_last(bar),
            _ => return error(seq, bad_op(seq, m.op)),
        };
        match result {
            Ok(u) => {
                let answer = response(
                    seq,
                    pb::stream_response::Kind::Update(convert::update(&self.session, &u)),
                );
                self.last_seq = seq;
                if self.answers.len() == self.window {
                    self.answers.pop_front();
                }
                self.answers.push_back((Payload::of(m), answer.clone()));
                (answer, Outcome::Applied)
            }
            Err(e) => error(seq, status::stream_error_from_chan(&e, expected)),
        }
    }
}

impl SessionState {
    /// Applies journaled bar messages at batch speed (`Replica.CatchUp`, `docs/GRPC.md`): the
    /// session must stand at `after_seq`, the messages carry the numbers after it in order, and
    /// each is checked as a stream checks it. All or nothing: a refusal (the error a stream
    /// would give) leaves the session as it was. No answer is built or kept: a stream duplicate
    /// of a caught-up number is then answered as one older than the replay window.
    pub fn catch_up(
        &mut self,
        after_seq: u64,
        msgs: &[pb::BarMessage],
    ) -> Result<(), pb::StreamError> {
        if self.last_seq != after_seq {
            let mut e = status::stream_error(
                Code::FailedPrecondition,
                format!(
                    "session at sequence {}, catch-up after {after_seq}",
                    self.last_seq
                ),
            );
            e.expected_seq = self.last_seq + 1;
            return Err(e);
        }
        self.apply_journal(&[], after_seq, msgs)
    }

    /// The catch-up of a new, empty session from a base (`Replica.CatchUp` with `fresh`): the
    /// `base` bars are appended as a stream appends them (checked alike, each violation naming
    /// the bar's index in the session), the session then stands at `after_seq`, and the
    /// messages follow with the numbers after it, as in [`Self::catch_up`]. The state is that
    /// of a session that streamed the base as appends, then the messages; only the numbering
    /// differs. All or nothing.
    pub fn catch_up_from(
        &mut self,
        base: &[Bar],
        after_seq: u64,
        msgs: &[pb::BarMessage],
    ) -> Result<(), pb::StreamError> {
        debug_assert!(self.last_seq == 0 && self.session.bars() == 0);
        self.apply_journal(base, after_seq, msgs)
    }

    /// Appends `base`, then applies `msgs` (numbered `after_seq + 1`, ...), as one batch.
    fn apply_journal(
        &mut self,
        base: &[Bar],
        after_seq: u64,
        msgs: &[pb::BarMessage],
    ) -> Result<(), pb::StreamError> {
        let mut ops = Vec::with_capacity(base.len() + msgs.len());
        ops.extend(base.iter().map(|&b| BarOp::Append(b)));
        // The first message a stream would refuse before the core sees it (an order, a missing
        // bar, an op); the core's own checks of the bars before it come first.
        let mut refused = None;
        for (k, m) in msgs.iter().enumerate() {
            let seq = after_seq + 1 + k as u64;
            match op_of(m, k, seq) {
                Ok(op) => ops.push(op),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        let core_error = |e: chan_core::BatchError| {
            // A base bar carries no number: it is refused as the first message would be (an
            // append of a base can only break a bar rule, or the 2^32-bar limit).
            let k = e.at.saturating_sub(base.len());
            status::stream_error_from_chan(&e.error, after_seq + 1 + k as u64)
        };
        if let Some(e) = refused {
            self.session.check_batch(&ops).map_err(core_error)?;
            return Err(e);
        }
        if ops.is_empty() {
            return Ok(());
        }
        self.session.apply_batch(&ops).map_err(core_error)?;
        self.last_seq = after_seq + msgs.len() as u64;
        // The cached answers must stay those of the numbers just before `last_seq`.
        self.answers.clear();
        Ok(())
    }
}

/// The core operation of bar message `k` of a catch-up, which must carry number `seq`.
fn op_of(m: &pb::BarMessage, k: usize, seq: u64) -> Result<BarOp, pb::StreamError> {
    if m.seq != seq {
        let description = format!("seq_order: expected sequence {seq}, got {}", m.seq);
        return Err(pb::StreamError {
            code: Code::InvalidArgument as i32,
            message: format!("invalid bars: {description}"),
            field_violations: vec![pb::BadRequestFieldViolation {
                field: format!("bars[{k}].seq"),
                description,
                reason: "seq_order".into(),
                index: -1,
            }],
            expected_seq: 0,
        });
    }
    let Some(b) = &m.bar else {
        return Err(no_bar(seq));
    };
    match pb::Op::try_from(m.op) {
        Ok(pb::Op::Append) => Ok(BarOp::Append(convert::bar(b))),
        Ok(pb::Op::ReplaceLast) => Ok(BarOp::ReplaceLast(convert::bar(b))),
        _ => Err(bad_op(seq, m.op)),
    }
}

fn no_bar(seq: u64) -> pb::StreamError {
    status::stream_error(
        Code::InvalidArgument,
        format!("bar message {seq} carries no bar"),
    )
}

fn bad_op(seq: u64, op: i32) -> pb::StreamError {
    status::stream_error(
        Code::InvalidArgument,
        format!("bar message {seq}: op must be APPEND or REPLACE_LAST, got {op}"),
    )
}

fn response(seq: u64, kind: pb::stream_response::Kind) -> pb::StreamResponse {
    pb::StreamResponse {
        seq,
        engine: ENGINE.into(),
        kind: Some(kind),
        epoch: 0,
    }
}

fn error(seq: u64, e: pb::StreamError) -> (pb::StreamResponse, Outcome) {
    let code = Code::from_i32(e.code);
    (
        response(seq, pb::stream_response::Kind::Error(e)),
        Outcome::Rejected(code),
    )
}

fn rejected_seq(seq: u64, expected: u64) -> (pb::StreamResponse, Outcome) {
    let mut e = status::stream_error(
        Code::FailedPrecondition,
        format!("expected sequence {expected}, got {seq}"),
    );
    e.expected_seq = expected;
    error(seq, e)
}

/// A session in the store: its state, how many streams are attached to it, and when it was
/// last used (a tick of the store's clock).
#[derive(Debug)]
pub struct SessionSlot {
    state: Mutex<SessionState>,
    attached: AtomicUsize,
    used: AtomicU64,
}

/// A session shared between the store and the streams connected to it.
pub type SharedSession = Arc<SessionSlot>;

/// Locks a session; a panic while it was held (a bug) does not make it unusable.
pub fn lock(s: &SharedSession) -> MutexGuard<'_, SessionState> {
    s.state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A stream's hold on its session: while it lives, the session is not closed to make room.
#[derive(Debug)]
pub struct Attached(SharedSession);

impl Attached {
    /// The session.
    pub fn session(&self) -> &SharedSession {
        &self.0
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.0.attached.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether a stream's session is still the one of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Current,
    /// Another session of the same name took its place (a new open or a fresh catch-up).
    Replaced,
    /// Closed (`Replica.CloseSessions`): no session of that name.
    Closed,
}

/// The store is full and every session in it has a stream attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full(pub usize);

impl Full {
    /// The refusal's message.
    pub fn message(&self) -> String {
        format!(
            "the engine holds server.max_sessions ({}) sessions, each with a stream attached",
            self.0
        )
    }
}

/// Every session of the server, by name.
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<String, SharedSession>>,
    max: usize,
    clock: AtomicU64,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

impl Sessions {
    /// An empty store holding at most `max` sessions.
    pub fn new(max: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            max: max.max(1),
            clock: AtomicU64::new(0),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, SharedSession>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks a session as used now.
    pub fn touch(&self, s: &SharedSession) {
        s.used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    fn attach(&self, s: &SharedSession) -> Attached {
        s.attached.fetch_add(1, Ordering::AcqRel);
        self.touch(s);
        Attached(s.clone())
    }

    /// Adds a session, replacing one of the same name; a new name in a full store closes the
    /// least recently used session with no stream attached.
    pub fn insert(&self, s: SessionState) -> Result<SharedSession, Full> {
        let mut map = self.map();
        self.insert_locked(&mut map, s)
    }

    /// [`Self::insert`] with a stream attached at once (nothing can close it in between).
    pub fn insert_attached(&self, s: SessionState) -> Result<Attached, Full> {
        let mut map = self.map();
        let shared = self.insert_locked(&mut map, s)?;
        Ok(self.attach(&shared))
    }

    fn insert_locked(
        &self,
        map: &mut HashMap<String, SharedSession>,
        s: SessionState,
    ) -> Result<SharedSession, Full> {
        if !map.contains_key(&s.name) && map.len() >= self.max {
            let idle = map
                .iter()
                .filter(|(_, x)| x.attached.load(Ordering::Acquire) == 0)
                .min_by_key(|(_, x)| x.used.load(Ordering::Relaxed))
                .map(|(name, _)| name.clone());
            let Some(name) = idle else {
                return Err(Full(self.max));
            };
            map.remove(&name);
            tracing::info!(
                message = "session closed: server.max_sessions reached, least recently used",
                session = shown(&name),
            );
        }
        let name = s.name.clone();
        let shared = Arc::new(SessionSlot {
            state: Mutex::new(s),
            attached: AtomicUsize::new(0),
            used: AtomicU64::new(0),
        });
        self.touch(&shared);
        map.insert(name, shared.clone());
        Ok(shared)
    }

    /// The session of that name.
    pub fn get(&self, name: &str) -> Option<SharedSession> {
        self.map().get(name).cloned()
    }

    /// The session of that name with a stream attached.
    pub fn get_attached(&self, name: &str) -> Option<Attached> {
        let map = self.map();
        map.get(name).map(|s| self.attach(s))
    }

    /// Whether `s` is still the session of that name.
    pub fn standing(&self, name: &str, s: &SharedSession) -> Standing {
        match self.map().get(name) {
            Some(x) if Arc::ptr_eq(x, s) => Standing::Current,
            Some(_) => Standing::Replaced,
            None => Standing::Closed,
        }
    }

    /// Whether `s` is still the session of that name (it was not replaced or closed).
    pub fn is_current(&self, name: &str, s: &SharedSession) -> bool {
        self.standing(name, s) == Standing::Current
    }

    /// Closes the sessions named; returns how many of them existed and how many are left.
    pub fn close<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> (usize, usize) {
        let mut map = self.map();
        let closed = names
            .into_iter()
            .filter(|n| map.remove(*n).is_some())
            .count();
        (closed, map.len())
    }

    /// How many sessions there are.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// No session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64, op: pb::Op, t: i64, p: f64) -> pb::BarMessage {
        pb::BarMessage {
            seq,
            op: op as i32,
            bar: Some(pb::Bar {
                time: t,
                open: p,
                high: p + 1.0,
                low: p - 1.0,
                close: p,
                volume: 1.0,
            }),
        }
    }

    fn err(r: &pb::StreamResponse) -> &pb::StreamError {
        match &r.kind {
            Some(pb::stream_response::Kind::Error(e)) => e,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn names() {
        for ok in ["BTC/USDT", "000001.SH", "a", "X:Y_z-1", &"A".repeat(64)] {
            assert!(check_symbol(ok).is_ok(), "{ok}");
        }
        for bad in ["", "BTC USDT", "é", "a;b", &"A".repeat(65)] {
            assert!(check_symbol(bad).is_err(), "{bad}");
        }
        for ok in ["1m", "15m", "4h", "1d", "1w", "1M", "1s", "9999m", "01m"] {
            assert!(check_timeframe(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "m", "0m", "10000m", "1y", "1 m", "-1m", "1.5h", "15", "1mm", "1é", "é", "1mé",
        ] {
            assert!(check_timeframe(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exactly_once() {
        let mut s = SessionState::new("X/1m".into(), EngineConfig::default(), false, 2).unwrap();
        // A gap and 0.
        for seq in [0, 2] {
            let (r, o) = s.handle(&msg(seq, pb::Op::Append, 0, 10.0));
            assert_eq!(o, Outcome::Rejected(Code::FailedPrecondition));
            assert_eq!(r.seq, seq);
            let e = err(&r);
            assert_eq!(e.message, format!("expected sequence 1, got {seq}"));
            assert_eq!(e.expected_seq, 1);
        }
        // Replacing with no bar: in-band FAILED_PRECONDITION, the number is not consumed.
        let (r, o) = s.handle(&msg(1, pb::Op::ReplaceLast, 0, 10.0));
        assert_eq!(o, Outcome::Rejected(Code::FailedPrecondition));
        assert_eq!(err(&r).expected_seq, 1);
        let (a1, o) = s.handle(&msg(1, pb::Op::Append, 0, 10.0));
        assert_eq!(o, Outcome::Applied);
        assert_eq!(a1.seq, 1);
        // A bad bar does not consume its number.
        let (r, o) = s.handle(&msg(2, pb::Op::Append, 0, 11.0));
        assert_eq!(o, Outcome::Rejected(Code::InvalidArgument));
        let v = &err(&r).field_violations[0];
        assert_eq!(
            (v.field.as_str(), v.reason.as_str(), v.index),
            ("bars[1].time", "time_duplicate", 1)
        );
        let (_, o) = s.handle(&msg(2, pb::Op::Append, 60, 11.0));
        assert_eq!(o, Outcome::Applied);
        // The same payload again: the cached answer, nothing applied.
        let (r, o) = s.handle(&msg(1, pb::Op::Append, 0, 10.0));
        assert_eq!((o, &r), (Outcome::Replayed, &a1));
        assert_eq!(s.session().bars(), 2);
        // A different payload under an applied number.
        let (r, o) = s.handle(&msg(1, pb::Op::Append, 0, 10.5));
        assert_eq!(o, Outcome::Rejected(Code::Aborted));
        assert_eq!(
            err(&r).message,
            "sequence 1 was applied with a different bar"
        );
        let (_, o) = s.handle(&msg(1, pb::Op::ReplaceLast, 0, 10.0));
        assert_eq!(o, Outcome::Rejected(Code::Aborted));
        // Out of the window of 2: FAILED_PRECONDITION naming the next number.
        let (_, o) = s.handle(&msg(3, pb::Op::ReplaceLast, 60, 12.0));
        assert_eq!(o, Outcome::Applied);
        let (r, o) = s.handle(&msg(1, pb::Op::Append, 0, 10.0));
        assert_eq!(o, Outcome::Rejected(Code::FailedPrecondition));
        assert_eq!(err(&r).expected_seq, 4);
        assert_eq!(s.last_seq(), 3);
        assert_eq!(s.session().bars(), 2);
        // Unknown op, missing bar.
        let (_, o) = s.handle(&msg(4, pb::Op::Unspecified, 120, 12.0));
        assert_eq!(o, Outcome::Rejected(Code::InvalidArgument));
        let (_, o) = s.handle(&pb::BarMessage {
            seq: 4,
            op: pb::Op::Append as i32,
            bar: None,
        });
        assert_eq!(o, Outcome::Rejected(Code::InvalidArgument));
        assert_eq!(s.last_seq(), 3);
    }

    #[test]
    fn store_replaces_by_name() {
        let store = Sessions::default();
        let a = store.insert(new("X/1m")).unwrap();
        assert!(store.is_current("X/1m", &a));
        let b = store.insert(new("X/1m")).unwrap();
        assert_eq!(store.standing("X/1m", &a), Standing::Replaced);
        assert!(store.is_current("X/1m", &b));
        assert_eq!(store.len(), 1);
        assert!(store.get("Y/1m").is_none());
        assert_eq!(store.close(["X/1m", "Y/1m"]), (1, 0));
        assert_eq!(store.standing("X/1m", &b), Standing::Closed);
    }

    fn new(name: &str) -> SessionState {
        SessionState::new(name.into(), EngineConfig::default(), false, 4).unwrap()
    }

    #[test]
    fn a_full_store_closes_the_least_recently_used_idle_session() {
        let store = Sessions::new(2);
        let a = store.insert_attached(new("A/1m")).unwrap();
        let b = store.insert(new("B/1m")).unwrap();
        // B is idle: it makes room (though A is older).
        let c = store.insert(new("C/1m")).unwrap();
        assert!(store.get("B/1m").is_none());
        assert_eq!(store.standing("B/1m", &b), Standing::Closed);
        // Replacing a session of the same name needs no room.
        store.insert(new("C/1m")).unwrap();
        assert!(!store.is_current("C/1m", &c));
        // C is idle again (the new one): D takes its place; with both attached, E is refused.
        let d = store.insert_attached(new("D/1m")).unwrap();
        assert!(store.get("C/1m").is_none());
        assert_eq!(store.insert(new("E/1m")).unwrap_err(), Full(2));
        assert_eq!(
            Full(2).message(),
            "the engine holds server.max_sessions (2) sessions, each with a stream attached"
        );
        // A stream that ends frees its session for eviction; the least recently used goes.
        drop(d);
        store.touch(a.session());
        drop(a);
        store.insert(new("E/1m")).unwrap();
        assert!(store.get("A/1m").is_some() && store.get("D/1m").is_none());
    }
}
