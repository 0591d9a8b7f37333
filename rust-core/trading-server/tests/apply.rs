//! `trading.v1.Replica.Apply`: stream messages of many sessions over one stream, each answered
//! as a stream of its session answers it, through real gRPC on loopback.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use chan_core::Bar;
use common::*;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};
use tonic_types::StatusExt;
use trading_server::pb;
use trading_server::pb::replica_client::ReplicaClient;
use trading_server::pb::trading_client::TradingClient;

fn replica(channel: Channel) -> ReplicaClient<Channel> {
    ReplicaClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

/// One Apply stream: requests in, answers out.
struct ApplyConn {
    tx: mpsc::Sender<pb::ApplyRequest>,
    rx: Streaming<pb::ApplyResponse>,
}

impl ApplyConn {
    async fn start(rep: &mut ReplicaClient<Channel>, token: Option<&str>) -> Result<Self, Status> {
        let (tx, rx) = mpsc::channel(1024);
        let mut r = Request::new(ReceiverStream::new(rx));
        if let Some(t) = token {
            r.metadata_mut().insert(
                "authorization",
                MetadataValue::try_from(format!("Bearer {t}")).unwrap(),
            );
        }
        let rx = rep.apply(r).await?.into_inner();
        Ok(Self { tx, rx })
    }

    async fn send(&self, r: pb::ApplyRequest) {
        self.tx.send(r).await.expect("the stream is open");
    }

    async fn next(&mut self) -> Result<pb::ApplyResponse, Status> {
        match self.rx.message().await? {
            Some(r) => Ok(r),
            None => Err(Status::unknown("the stream ended without an answer")),
        }
    }

    /// Sends one request and reads its answer.
    async fn apply(&mut self, msgs: Vec<pb::SessionMessage>) -> Result<pb::ApplyResponse, Status> {
        self.send(pb::ApplyRequest { messages: msgs }).await;
        self.next().await
    }
}

fn sm(symbol: &str, timeframe: &str, bar: pb::BarMessage) -> pb::SessionMessage {
    pb::SessionMessage {
        session: Some(pb::SessionName {
            symbol: symbol.into(),
            timeframe: timeframe.into(),
        }),
        bar: Some(bar),
    }
}

fn bm(seq: u64, op: pb::Op, b: &Bar) -> pb::BarMessage {
    pb::BarMessage {
        seq,
        op: op as i32,
        bar: Some(bar_msg(b)),
    }
}

fn open_macd(symbol: &str, timeframe: &str) -> pb::StreamRequest {
    let mut m = open_msg(symbol, timeframe, false);
    if let Some(pb::stream_request::Kind::Open(o)) = &mut m.kind {
        o.with_macd = true;
    }
    m
}

/// A series as stream operations: every bar appended, and before every fifth one two
/// replacements of the one before (a forming bar that moved, then came back).
fn ops(bars: &[Bar]) -> Vec<(pb::Op, Bar)> {
    let mut out = Vec::new();
    for (i, b) in bars.iter().enumerate() {
        if i % 5 == 4 {
            let mut moved = bars[i - 1];
            moved.high += 0.5;
            moved.close = moved.high;
            out.push((pb::Op::ReplaceLast, moved));
            out.push((pb::Op::ReplaceLast, bars[i - 1]));
        }
        out.push((pb::Op::Append, *b));
    }
    out
}

/// Equal answers: the same fields, bit for bit (NaN and the sign of zero included).
fn assert_same(got: &pb::StreamResponse, want: &pb::StreamResponse, what: &str) {
    assert_eq!(
        got.encode_to_vec(),
        want.encode_to_vec(),
        "{what}:\n apply:  {got:?}\n stream: {want:?}"
    );
}

fn code_of(r: &pb::StreamResponse) -> Code {
    Code::from_i32(error_of(r).code)
}

/// One session's messages as the test sends them, and what it expects of the bars.
struct Script {
    symbol: &'static str,
    ops: Vec<(pb::Op, Bar)>,
    /// The next operation to send, and the last number applied.
    next: usize,
    last: u64,
    /// The session's bars as the applied messages leave them.
    bars: Vec<Bar>,
}

/// A session opened by a stream (then closed) gets its bars through Apply, in several requests
/// pipelined on one stream, interleaved with other sessions' messages, duplicates, a different
/// payload under an applied number, gaps, bad bars, a replacement on an empty session, unknown
/// sessions and bad names. Each answer equals, bit for bit, the answer a stream gives for the
/// same message on a twin session; the sessions end equal to a batch analysis of their bars.
#[tokio::test]
async fn apply_answers_as_a_stream() {
    let server = TestServer::default().await;
    let mut client = server.client().await;
    let mut rep = replica(server.channel().await);

    let mut scripts = vec![
        Script {
            symbol: "A",
            ops: ops(&sample("BTCUSD-BITSTAMP_30m.csv")[..400]),
            next: 0,
            last: 0,
            bars: Vec::new(),
        },
        Script {
            symbol: "B",
            ops: ops(&sample("AAPL_1d_head1200.csv")[..300]),
            next: 0,
            last: 0,
            bars: Vec::new(),
        },
        Script {
            symbol: "C",
            ops: ops(&sample("BTCUSD-BITSTAMP_30m.csv")[400..650]),
            next: 0,
            last: 0,
            bars: Vec::new(),
        },
    ];
    // The sessions: opened by a stream that then ends; the twins stay on their streams.
    let mut twins = HashMap::new();
    for s in &scripts {
        let (conn, opened) = Conn::open(&mut client, open_macd(s.symbol, "1m"))
            .await
            .unwrap();
        assert_eq!(
            (opened.session, opened.last_seq),
            (format!("{}/1m", s.symbol), 0)
        );
        drop(conn);
        let (twin, _) = Conn::open(&mut client, open_macd(s.symbol, "2m"))
            .await
            .unwrap();
        twins.insert(s.symbol, twin);
    }

    // The messages, round robin over the sessions, with the special cases among them. Each
    // entry: the session's symbol (None: no twin) and the message.
    let mut plan: Vec<(Option<&'static str>, pb::SessionMessage)> = Vec::new();
    let mut round = 0usize;
    // A replacement on the empty session C: FAILED_PRECONDITION naming number 1.
    {
        let b = scripts[2].ops[0].1;
        plan.push((Some("C"), sm("C", "1m", bm(1, pb::Op::ReplaceLast, &b))));
    }
    loop {
        let mut any = false;
        for s in &mut scripts {
            // A few messages of this session (1 to 3), so runs of one session alternate.
            for _ in 0..=((round + s.symbol.len()) % 3) {
                let Some(&(op, b)) = s.ops.get(s.next) else {
                    break;
                };
                any = true;
                s.next += 1;
                let seq = s.next as u64;
                plan.push((Some(s.symbol), sm(s.symbol, "1m", bm(seq, op, &b))));
                if s.symbol == "A" && seq.is_multiple_of(97) {
                    // A duplicate (the cached answer), a different payload under the same
                    // number (ABORTED), a gap (FAILED_PRECONDITION, expected seq + 1), a bad
                    // bar under the next number (INVALID_ARGUMENT, nothing consumed), a bad op
                    // and a message without a bar.
                    plan.push((Some("A"), sm("A", "1m", bm(seq, op, &b))));
                    let mut other = b;
                    other.close += 0.25;
                    other.high = other.high.max(other.close);
                    plan.push((Some("A"), sm("A", "1m", bm(seq, op, &other))));
                    plan.push((Some("A"), sm("A", "1m", bm(seq + 2, op, &b))));
                    let mut bad = b;
                    bad.high = bad.low - 1.0;
                    plan.push((Some("A"), sm("A", "1m", bm(seq + 1, pb::Op::Append, &bad))));
                    plan.push((
                        Some("A"),
                        sm("A", "1m", bm(seq + 1, pb::Op::Unspecified, &b)),
                    ));
                    plan.push((
                        Some("A"),
                        sm(
                            "A",
                            "1m",
                            pb::BarMessage {
                                seq: seq + 1,
                                op: pb::Op::Append as i32,
                                bar: None,
                            },
                        ),
                    ));
                }
                if s.symbol == "B" && seq.is_multiple_of(131) {
                    // Sessions the engine does not hold, and bad names.
                    plan.push((None, sm("U", "1m", bm(seq, op, &b))));
                    plan.push((None, sm("bad sym", "1x", bm(seq, op, &b))));
                }
            }
        }
        round += 1;
        if !any {
            break;
        }
    }

    // Requests of varied sizes (small ones applied inline, larger ones on the blocking pool),
    // all sent before any answer is read.
    let sizes = [1, 2, 5, 8, 9, 40, 3, 120, 700];
    let mut requests: Vec<Vec<(Option<&'static str>, pb::SessionMessage)>> = Vec::new();
    let mut rest = plan.as_slice();
    let mut k = 0;
    while !rest.is_empty() {
        let n = sizes[k % sizes.len()].min(rest.len());
        requests.push(rest[..n].to_vec());
        rest = &rest[n..];
        k += 1;
    }
    assert!(requests.len() > 10);
    let mut apply = ApplyConn::start(&mut rep, None).await.unwrap();
    let t = Instant::now();
    for r in &requests {
        apply
            .send(pb::ApplyRequest {
                messages: r.iter().map(|(_, m)| m.clone()).collect(),
            })
            .await;
    }
    let mut answers = Vec::new();
    for r in &requests {
        let got = apply.next().await.unwrap();
        assert_eq!(got.answers.len(), r.len(), "one answer per message");
        answers.extend(got.answers);
    }
    let applied = t.elapsed();
    eprintln!(
        "{} messages in {} requests: {:.0} msg/s",
        plan.len(),
        requests.len(),
        plan.len() as f64 / applied.as_secs_f64()
    );

    // The unknown session's and the bad name's texts, as a stream gives them.
    let unknown = Conn::first(&mut client, open_msg("U", "1m", true))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let bad_name = Conn::first(&mut client, open_msg("bad sym", "1x", false))
        .await
        .unwrap_err();
    assert_eq!(bad_name.code(), Code::InvalidArgument);
    let bad_violations: Vec<(String, String)> = bad_name
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| (v.field, v.description))
        .collect();
    assert_eq!(bad_violations.len(), 2);

    let mut seen = HashMap::<Code, usize>::new();
    for (i, ((target, m), got)) in plan.iter().zip(&answers).enumerate() {
        let b = m.bar.unwrap();
        assert_eq!(
            (got.seq, got.engine.as_str(), got.epoch),
            (b.seq, "rust", 0)
        );
        let what = format!("message {i} ({target:?} seq {})", b.seq);
        match target {
            Some(symbol) => {
                let twin = twins.get_mut(symbol).unwrap();
                let want = twin
                    .request(pb::StreamRequest {
                        kind: Some(pb::stream_request::Kind::Bar(b)),
                    })
                    .await
                    .unwrap();
                assert_same(got, &want, &what);
                let s = scripts.iter_mut().find(|s| s.symbol == *symbol).unwrap();
                match &got.kind {
                    Some(pb::stream_response::Kind::Update(u)) if b.seq == s.last + 1 => {
                        let bar = b.bar.unwrap();
                        let bar =
                            Bar::new(bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume);
                        if b.op == pb::Op::ReplaceLast as i32 {
                            *s.bars.last_mut().unwrap() = bar;
                        } else {
                            s.bars.push(bar);
                        }
                        s.last = b.seq;
                        assert_eq!(u.bars, s.bars.len() as u64);
                        *seen.entry(Code::Ok).or_default() += 1;
                    }
                    Some(pb::stream_response::Kind::Update(_)) => {
                        // A duplicate: the cached answer.
                        assert!(b.seq <= s.last, "{what}");
                        *seen.entry(Code::AlreadyExists).or_default() += 1;
                    }
                    _ => *seen.entry(code_of(got)).or_default() += 1,
                }
            }
            None if m.session.as_ref().unwrap().symbol == "U" => {
                let e = error_of(got);
                assert_eq!(
                    (code_of(got), e.message.as_str()),
                    (Code::NotFound, unknown.message())
                );
                assert_eq!(e.message, "session U/1m not found");
                assert!(e.field_violations.is_empty());
                *seen.entry(Code::NotFound).or_default() += 1;
            }
            None => {
                let e = error_of(got);
                assert_eq!(
                    (code_of(got), e.message.as_str()),
                    (Code::InvalidArgument, bad_name.message())
                );
                let v: Vec<(String, String)> = e
                    .field_violations
                    .iter()
                    .map(|v| (v.field.clone(), v.description.clone()))
                    .collect();
                assert_eq!(v, bad_violations);
                assert!(e.field_violations.iter().all(|v| v.index == -1));
                *seen.entry(Code::Unimplemented).or_default() += 1;
            }
        }
    }
    // Every case happened (Unimplemented counts the bad names, AlreadyExists the duplicates).
    for c in [
        Code::Ok,
        Code::AlreadyExists,
        Code::Aborted,
        Code::FailedPrecondition,
        Code::InvalidArgument,
        Code::NotFound,
        Code::Unimplemented,
    ] {
        assert!(seen.get(&c).copied().unwrap_or(0) > 0, "{c:?}: {seen:?}");
    }
    // The specific texts of the refusals on A after number 97.
    let at = |seq: u64, nth: usize| {
        plan.iter()
            .zip(&answers)
            .filter(|((t, m), _)| *t == Some("A") && m.bar.unwrap().seq == seq)
            .nth(nth)
            .map(|(_, a)| a.clone())
            .unwrap()
    };
    let (first, dup) = (at(97, 0), at(97, 1));
    assert_same(&dup, &first, "the duplicate");
    let e = error_of(&at(97, 2)).clone();
    assert_eq!(
        (Code::from_i32(e.code), e.message.as_str()),
        (
            Code::Aborted,
            "sequence 97 was applied with a different bar"
        )
    );
    let e = error_of(&at(99, 0)).clone();
    assert_eq!(
        (Code::from_i32(e.code), e.message.as_str(), e.expected_seq),
        (Code::FailedPrecondition, "expected sequence 98, got 99", 98)
    );
    let e = error_of(&at(98, 0)).clone();
    assert_eq!(Code::from_i32(e.code), Code::InvalidArgument);
    assert!(e.message.starts_with("invalid bars: "), "{}", e.message);
    assert!(
        e.field_violations
            .iter()
            .any(|v| v.reason == "high_range" && v.field.starts_with("bars[")),
        "{e:?}"
    );
    let e = error_of(&at(98, 1)).clone();
    assert_eq!(
        e.message,
        "bar message 98: op must be APPEND or REPLACE_LAST, got 0"
    );
    let e = error_of(&at(98, 2)).clone();
    assert_eq!(e.message, "bar message 98 carries no bar");
    let e = error_of(&answers[0]).clone();
    assert_eq!(
        (Code::from_i32(e.code), e.message.as_str(), e.expected_seq),
        (
            Code::FailedPrecondition,
            "replace_last: the session has no bar to replace",
            1
        )
    );

    // Each session equals a batch analysis of its bars, and its twin.
    for s in &scripts {
        assert_eq!(
            s.last,
            s.ops.len() as u64,
            "{}: every message applied",
            s.symbol
        );
        let snap = snapshot(&mut client, s.symbol, "1m").await;
        let twin = snapshot(&mut client, s.symbol, "2m").await;
        assert_eq!((snap.last_seq, twin.last_seq), (s.last, s.last));
        let batch = client
            .analyze(pb::AnalyzeRequest {
                bars: Some(columns(&s.bars)),
                config: None,
                with_macd: true,
            })
            .await
            .unwrap()
            .into_inner()
            .analysis
            .unwrap();
        let a = snap.analysis.unwrap();
        assert_eq!(a.bars, s.bars.len() as u64);
        assert_eq!(a.encode_to_vec(), batch.encode_to_vec(), "{}", s.symbol);
        assert_eq!(
            a.encode_to_vec(),
            twin.analysis.unwrap().encode_to_vec(),
            "{}",
            s.symbol
        );
    }

    // The stream is still open: a closed session is now unknown, the others go on.
    rep.close_sessions(pb::CloseSessionsRequest {
        sessions: vec![pb::SessionName {
            symbol: "A".into(),
            timeframe: "1m".into(),
        }],
    })
    .await
    .unwrap();
    let b = scripts[1].bars[scripts[1].bars.len() - 1];
    let next = Bar {
        time: b.time + 86_400_000,
        ..b
    };
    let got = apply
        .apply(vec![
            sm("A", "1m", bm(scripts[0].last + 1, pb::Op::Append, &next)),
            sm("B", "1m", bm(scripts[1].last + 1, pb::Op::Append, &next)),
        ])
        .await
        .unwrap();
    assert_eq!(
        (
            code_of(&got.answers[0]),
            error_of(&got.answers[0]).message.as_str()
        ),
        (Code::NotFound, "session A/1m not found")
    );
    assert_eq!(
        update_of(&got.answers[1]).bars,
        scripts[1].bars.len() as u64 + 1
    );
    // An empty request: an empty answer.
    let got = apply.apply(Vec::new()).await.unwrap();
    assert!(got.answers.is_empty());
}

async fn snapshot(c: &mut TradingClient<Channel>, symbol: &str, tf: &str) -> pb::SnapshotResponse {
    c.get_snapshot(pb::SnapshotRequest {
        symbol: symbol.into(),
        timeframe: tf.into(),
    })
    .await
    .unwrap()
    .into_inner()
}

/// With an operator token, Apply needs it: the client token gets `PERMISSION_DENIED`, none
/// UNAUTHENTICATED; the operator's works.
#[tokio::test]
async fn apply_needs_the_operator() {
    let mut cfg = config();
    cfg.server.auth_token = "client-t".into();
    cfg.server.operator_token = "operator-t".into();
    let server = TestServer::start(cfg).await;
    let mut rep = replica(server.channel().await);
    for (token, code, message) in [
        (
            Some("client-t"),
            Code::PermissionDenied,
            "operator credential required",
        ),
        (None, Code::Unauthenticated, ""),
        (Some("nope"), Code::Unauthenticated, ""),
    ] {
        let s = match ApplyConn::start(&mut rep, token).await {
            Err(s) => s,
            Ok(mut c) => c.apply(Vec::new()).await.unwrap_err(),
        };
        assert_eq!(s.code(), code, "{token:?}: {s:?}");
        if !message.is_empty() {
            assert_eq!(s.message(), message);
        }
    }
    let mut c = ApplyConn::start(&mut rep, Some("operator-t"))
        .await
        .unwrap();
    let b = Bar::new(0, 1.0, 2.0, 0.5, 1.5, 1.0);
    let got = c
        .apply(vec![sm("X", "1m", bm(1, pb::Op::Append, &b))])
        .await
        .unwrap();
    assert_eq!(code_of(&got.answers[0]), Code::NotFound);
}

/// `ApplyRequest` with `messages` (field 1, a message) sent as a varint.
#[derive(Clone, PartialEq, prost::Message)]
struct WrongApply {
    #[prost(uint64, tag = "1")]
    messages: u64,
}

/// A request over `server.max_message_bytes`: every message answered in-band with
/// `RESOURCE_EXHAUSTED`, nothing applied, the stream open. Undecodable bytes end the stream with
/// `INVALID_ARGUMENT` naming the type.
#[tokio::test]
async fn oversized_and_undecodable_requests() {
    let mut cfg = config();
    cfg.server.max_message_bytes = 1024;
    let server = TestServer::start(cfg).await;
    let mut client = server.client().await;
    let mut rep = replica(server.channel().await);
    let (conn, _) = Conn::open(&mut client, open_msg("S", "1m", false))
        .await
        .unwrap();
    drop(conn);
    let all = sample("BTCUSD-BITSTAMP_30m.csv");
    let bars = &all[..20];
    let msgs: Vec<pb::SessionMessage> = bars
        .iter()
        .enumerate()
        .map(|(i, b)| sm("S", "1m", bm(i as u64 + 1, pb::Op::Append, b)))
        .collect();
    let size = pb::ApplyRequest {
        messages: msgs.clone(),
    }
    .encoded_len();
    assert!(size > 1024 && size <= 2048, "{size}");
    let mut c = ApplyConn::start(&mut rep, None).await.unwrap();
    let got = c.apply(msgs.clone()).await.unwrap();
    assert_eq!(got.answers.len(), msgs.len());
    for (i, a) in got.answers.iter().enumerate() {
        assert_eq!(a.seq, i as u64 + 1);
        let e = error_of(a);
        assert_eq!(
            (Code::from_i32(e.code), e.message.clone()),
            (
                Code::ResourceExhausted,
                format!("request of {size} bytes exceeds server.max_message_bytes (1024)")
            )
        );
    }
    // Nothing was applied: the first messages go through now.
    let got = c.apply(msgs[..5].to_vec()).await.unwrap();
    for (i, a) in got.answers.iter().enumerate() {
        assert_eq!(update_of(a).bars, i as u64 + 1);
    }

    // Beyond twice the limit the transport refuses the request: the stream ends with
    // RESOURCE_EXHAUSTED.
    let huge: Vec<pb::SessionMessage> = all[..40]
        .iter()
        .enumerate()
        .map(|(i, b)| sm("S", "1m", bm(i as u64 + 6, pb::Op::Append, b)))
        .collect();
    let s = c.apply(huge).await.unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");

    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let out = tokio_stream::iter(vec![WrongApply { messages: 7 }]);
    let r = grpc
        .streaming::<_, WrongApply, pb::ApplyResponse, _>(
            Request::new(out),
            tonic::codegen::http::uri::PathAndQuery::from_static("/trading.v1.Replica/Apply"),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    let s = match r {
        Err(s) => s,
        Ok(response) => response.into_inner().message().await.unwrap_err(),
    };
    assert_eq!(
        (s.code(), s.message()),
        (
            Code::InvalidArgument,
            "the request is not a valid trading.v1.ApplyRequest"
        )
    );
}
