//! Streaming sessions (`docs/GRPC.md`, "Streams: exactly once"). A session is named
//! `<symbol>/<timeframe>` and lives in the server until it is replaced or the server stops; a
//! stream is only a connection to it. Each bar message carries a sequence number; with `L` the
//! last applied one, `L + 1` is applied, a duplicate gets its cached answer again (for the last
//! `server.replay_window` numbers), a different payload under an applied number is `ABORTED`,
//! and a gap (or 0) is `FAILED_PRECONDITION` naming `L + 1`. A rejected message consumes nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chan_core::{ChanError, EngineConfig, Session};
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
            "symbol {s:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ : / -"
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
            "timeframe {s:?} must be a positive number of at most 4 digits followed by one of \
             s m h d w M (1m, 15m, 4h, 1d, 1w, 1M)"
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
                    b.time as u64,
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
        convert::analysis(self.session.engine(), self.session.tail())
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
            return error(
                seq,
                status::stream_error(
                    Code::InvalidArgument,
                    format!("bar message {seq} carries no bar"),
                ),
            );
        };
        let bar = convert::bar(b);
        let result = match pb::Op::try_from(m.op) {
            Ok(pb::Op::Append) => self.session.append(bar),
            Ok(pb::Op::ReplaceLast) => self.session.replace_last(bar),
            _ => {
                return error(
                    seq,
                    status::stream_error(
                        Code::InvalidArgument,
                        format!(
                            "bar message {seq}: op must be APPEND or REPLACE_LAST, got {}",
                            m.op
                        ),
                    ),
                )
            }
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

/// A session shared between the store and the streams connected to it.
pub type SharedSession = Arc<Mutex<SessionState>>;

/// Locks a session; a panic while it was held (a bug) does not make it unusable.
pub fn lock(s: &SharedSession) -> MutexGuard<'_, SessionState> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every session of the server, by name.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, SharedSession>>,
}

impl Sessions {
    fn map(&self) -> MutexGuard<'_, HashMap<String, SharedSession>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a session, replacing one of the same name.
    pub fn insert(&self, s: SessionState) -> SharedSession {
        let name = s.name.clone();
        let shared = Arc::new(Mutex::new(s));
        self.map().insert(name, shared.clone());
        shared
    }

    /// The session of that name.
    pub fn get(&self, name: &str) -> Option<SharedSession> {
        self.map().get(name).cloned()
    }

    /// Whether `s` is still the session of that name (it was not replaced).
    pub fn is_current(&self, name: &str, s: &SharedSession) -> bool {
        self.map().get(name).is_some_and(|x| Arc::ptr_eq(x, s))
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
        let a = store
            .insert(SessionState::new("X/1m".into(), EngineConfig::default(), false, 4).unwrap());
        assert!(store.is_current("X/1m", &a));
        let b = store
            .insert(SessionState::new("X/1m".into(), EngineConfig::default(), false, 4).unwrap());
        assert!(!store.is_current("X/1m", &a));
        assert!(store.is_current("X/1m", &b));
        assert_eq!(store.len(), 1);
        assert!(store.get("Y/1m").is_none());
    }
}
