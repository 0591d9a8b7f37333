//! `trading.v1.Replica` (`CatchUp`, `CloseSessions`), operator roles, `config_version`, and the
//! limits and messages of `docs/GRPC.md`, through real gRPC on loopback.

mod common;

use std::time::Instant;

use chan_core::Bar;
use common::*;
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_types::StatusExt;
use trading_server::pb;
use trading_server::pb::replica_client::ReplicaClient;
use trading_server::pb::trading_client::TradingClient;

fn replica(channel: Channel) -> ReplicaClient<Channel> {
    ReplicaClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

fn open(symbol: &str, timeframe: &str) -> pb::OpenSession {
    pb::OpenSession {
        symbol: symbol.into(),
        timeframe: timeframe.into(),
        config: None,
        with_macd: true,
        resume: false,
    }
}

/// The sample series as stream messages: every bar appended, and before every fifth one a
/// replacement of the one before (a forming bar that moved), numbered from 1.
fn messages(bars: &[Bar]) -> Vec<pb::BarMessage> {
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
    out.into_iter()
        .enumerate()
        .map(|(k, (op, b))| pb::BarMessage {
            seq: k as u64 + 1,
            op: op as i32,
            bar: Some(bar_msg(&b)),
        })
        .collect()
}

fn req(m: &pb::BarMessage) -> pb::StreamRequest {
    pb::StreamRequest {
        kind: Some(pb::stream_request::Kind::Bar(*m)),
    }
}

fn entry(
    o: pb::OpenSession,
    fresh: bool,
    after: u64,
    bars: &[pb::BarMessage],
) -> pb::SessionCatchUp {
    pb::SessionCatchUp {
        open: Some(o),
        fresh,
        after_seq: after,
        bars: bars.to_vec(),
        base: None,
    }
}

/// A fresh entry from a base: the session's bars before `after`.
fn based(
    o: pb::OpenSession,
    base: pb::Bars,
    after: u64,
    bars: &[pb::BarMessage],
) -> pb::SessionCatchUp {
    pb::SessionCatchUp {
        base: Some(base),
        ..entry(o, true, after, bars)
    }
}

/// Stream messages numbered from `first`.
fn numbered(ops: &[(pb::Op, Bar)], first: u64) -> Vec<pb::BarMessage> {
    ops.iter()
        .enumerate()
        .map(|(k, (op, b))| pb::BarMessage {
            seq: first + k as u64,
            op: *op as i32,
            bar: Some(bar_msg(b)),
        })
        .collect()
}

/// What follows a base of `bars[..n]`: the last base bar replaced (moved), then `m` bars
/// appended, before every fifth one two replacements of the one before.
fn after_base(bars: &[Bar], n: usize, m: usize) -> Vec<(pb::Op, Bar)> {
    let moved = |b: Bar| Bar {
        high: b.high + 0.5,
        close: b.high + 0.5,
        ..b
    };
    let mut out = vec![(pb::Op::ReplaceLast, moved(bars[n - 1]))];
    for i in n..n + m {
        if i % 5 == 4 {
            out.push((pb::Op::ReplaceLast, moved(bars[i - 1])));
            out.push((pb::Op::ReplaceLast, bars[i - 1]));
        }
        out.push((pb::Op::Append, bars[i]));
    }
    out
}

async fn catch_up(
    r: &mut ReplicaClient<Channel>,
    e: Vec<pb::SessionCatchUp>,
) -> Vec<pb::SessionCaughtUp> {
    r.catch_up(pb::CatchUpRequest { sessions: e })
        .await
        .unwrap()
        .into_inner()
        .sessions
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

/// The analysis as bytes: equal bytes are equal bit for bit (the sign of zero included).
fn bytes(s: &pb::SnapshotResponse) -> Vec<u8> {
    s.analysis.as_ref().unwrap().encode_to_vec()
}

/// `CatchUp` (a fresh batch, then batches after it) leaves exactly the session a stream of the
/// same messages leaves; afterwards the caught-up numbers are out of the replay window, and the
/// stream goes on from the next number as on the streamed session.
#[tokio::test]
async fn catch_up_equals_streaming() {
    let server = TestServer::default().await;
    let mut client = server.client().await;
    let mut rep = replica(server.channel().await);
    let msgs = messages(&sample("BTCUSD-BITSTAMP_30m.csv"));
    let (split, tail) = (msgs.len() - 10, 10);

    let (mut conn, _) = Conn::open(&mut client, {
        let mut m = open_msg("S", "1m", false);
        if let Some(pb::stream_request::Kind::Open(o)) = &mut m.kind {
            o.with_macd = true;
        }
        m
    })
    .await
    .unwrap();
    let t = Instant::now();
    for m in &msgs[..split] {
        let r = conn.request(req(m)).await.unwrap();
        assert!(
            matches!(r.kind, Some(pb::stream_response::Kind::Update(_))),
            "{r:?}"
        );
    }
    let streamed = t.elapsed();

    let t = Instant::now();
    let mut after = 0;
    for (i, chunk) in msgs[..split].chunks(700).enumerate() {
        let got = catch_up(&mut rep, vec![entry(open("S", "2m"), i == 0, after, chunk)]).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].error, None, "{:?}", got[0].error);
        after += chunk.len() as u64;
        assert_eq!((got[0].session.as_str(), got[0].last_seq), ("S/2m", after));
    }
    let caught = t.elapsed();
    eprintln!(
        "{split} messages: stream {:.0} msg/s, catch-up {:.0} msg/s",
        split as f64 / streamed.as_secs_f64(),
        split as f64 / caught.as_secs_f64()
    );

    let (a, b) = (
        snapshot(&mut client, "S", "1m").await,
        snapshot(&mut client, "S", "2m").await,
    );
    assert_eq!(a.last_seq, b.last_seq);
    assert_eq!(bytes(&a), bytes(&b));

    // A duplicate of a caught-up number: out of the window, naming the next number.
    let (mut c2, opened) = Conn::open(&mut client, open_msg("S", "2m", true))
        .await
        .unwrap();
    assert_eq!(opened.last_seq, split as u64);
    let r = c2.request(req(&msgs[split - 1])).await.unwrap();
    let e = error_of(&r);
    assert_eq!(
        (Code::from_i32(e.code), e.expected_seq),
        (Code::FailedPrecondition, split as u64 + 1)
    );
    // The next numbers: the same answers on both sessions.
    for m in &msgs[split..split + tail] {
        let (x, y) = (
            conn.request(req(m)).await.unwrap(),
            c2.request(req(m)).await.unwrap(),
        );
        assert_eq!(x.encode_to_vec(), y.encode_to_vec());
    }
    let (a, b) = (
        snapshot(&mut client, "S", "1m").await,
        snapshot(&mut client, "S", "2m").await,
    );
    assert_eq!(bytes(&a), bytes(&b));
}

fn violation(e: &pb::StreamError) -> (&str, &str, &str, i64) {
    let v = &e.field_violations[0];
    (
        v.field.as_str(),
        v.reason.as_str(),
        v.description.as_str(),
        v.index,
    )
}

/// Every refusal of an entry leaves its session exactly as it was; the call itself is OK, and
/// the other entries of the same request are applied.
#[tokio::test]
async fn refused_entries_change_nothing() {
    let server = TestServer::default().await;
    let mut client = server.client().await;
    let mut rep = replica(server.channel().await);
    let msgs = messages(&sample("BTCUSD-BITSTAMP_30m.csv")[..300]);
    let got = catch_up(
        &mut rep,
        vec![entry(open("A", "1m"), true, 0, &msgs[..100])],
    )
    .await;
    assert_eq!(
        (got[0].last_seq, got[0].bars, &got[0].error),
        (100, got[0].bars, &None)
    );
    let before = snapshot(&mut client, "A", "1m").await;
    let count = got[0].bars;

    let mut bad_bar = msgs[100..150].to_vec();
    let k = 20;
    let b = bad_bar[k].bar.as_mut().unwrap();
    b.high = b.low - 1.0;
    let mut gap = msgs[100..150].to_vec();
    gap[7].seq += 1;
    let mut no_bar = msgs[100..150].to_vec();
    no_bar[3].bar = None;
    let mut bad_op = msgs[100..150].to_vec();
    bad_op[4].op = pb::Op::Unspecified as i32;
    let got = catch_up(
        &mut rep,
        vec![
            entry(open("A", "1m"), false, 100, &bad_bar),
            entry(open("A", "1m"), false, 100, &gap),
            entry(open("A", "1m"), false, 99, &msgs[99..150]),
            entry(open("A", "1m"), true, 100, &msgs[100..150]),
            entry(open("B", "1m"), false, 0, &msgs[..10]),
            entry(open("A", "1m"), false, 100, &no_bar),
            entry(open("A", "1m"), false, 100, &bad_op),
            entry(open("bad sym", "1x"), false, 0, &msgs[..10]),
            entry(
                pb::OpenSession {
                    config: Some(pb::EngineConfig {
                        macd: Some(pb::MacdConfig {
                            fast_period: Some(0),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..open("A", "1m")
                },
                true,
                0,
                &msgs[..10],
            ),
            // Applied: the others are refused on their own.
            entry(open("C", "1m"), true, 0, &msgs[..50]),
        ],
    )
    .await;
    assert_eq!(got.len(), 10);
    for g in &got[..9] {
        assert!(g.error.is_some(), "{g:?}");
    }
    for g in [
        &got[0], &got[1], &got[2], &got[3], &got[5], &got[6], &got[8],
    ] {
        assert_eq!(
            (g.session.as_str(), g.last_seq, g.bars),
            ("A/1m", 100, count),
            "{g:?}"
        );
    }
    let e = got[0].error.as_ref().unwrap();
    assert_eq!(Code::from_i32(e.code), Code::InvalidArgument);
    // The bar's index in the session, as a stream names it: the bars before it, less one
    // when it replaces the last.
    let appends = bad_bar[..k]
        .iter()
        .filter(|m| m.op == pb::Op::Append as i32)
        .count() as u64;
    let replaces = u64::from(bad_bar[k].op == pb::Op::ReplaceLast as i32);
    let index = i64::try_from(count + appends - replaces).unwrap();
    assert!(
        e.field_violations
            .iter()
            .any(|v| v.reason == "high_range" && v.index == index),
        "{e:?}"
    );
    assert!(e.field_violations.iter().all(|v| v.index == index));
    let e = got[1].error.as_ref().unwrap();
    assert_eq!(Code::from_i32(e.code), Code::InvalidArgument);
    assert_eq!(
        e.message,
        "invalid bars: seq_order: expected sequence 108, got 109"
    );
    assert_eq!(
        violation(e),
        (
            "bars[7].seq",
            "seq_order",
            "seq_order: expected sequence 108, got 109",
            -1
        )
    );
    let e = got[2].error.as_ref().unwrap();
    assert_eq!(Code::from_i32(e.code), Code::FailedPrecondition);
    assert_eq!(
        (e.message.as_str(), e.expected_seq),
        ("session at sequence 100, catch-up after 99", 101)
    );
    let e = got[3].error.as_ref().unwrap();
    assert_eq!(Code::from_i32(e.code), Code::InvalidArgument);
    assert_eq!(e.field_violations[0].field, "after_seq");
    let e = got[4].error.as_ref().unwrap();
    assert_eq!(
        (Code::from_i32(e.code), e.message.as_str()),
        (Code::NotFound, "session B/1m not found")
    );
    assert_eq!((got[4].last_seq, got[4].bars), (0, 0));
    let e = got[5].error.as_ref().unwrap();
    assert_eq!(e.message, "bar message 104 carries no bar");
    let e = got[6].error.as_ref().unwrap();
    assert_eq!(
        e.message,
        "bar message 105: op must be APPEND or REPLACE_LAST, got 0"
    );
    let e = got[7].error.as_ref().unwrap();
    assert_eq!(got[7].session, "bad sym/1x");
    let fields: Vec<&str> = e
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(fields, ["open.symbol", "open.timeframe"]);
    let e = got[8].error.as_ref().unwrap();
    assert_eq!(e.field_violations[0].field, "config.macd.fast_period");
    assert_eq!((got[9].error.as_ref(), got[9].last_seq), (None, 50));

    let after = snapshot(&mut client, "A", "1m").await;
    assert_eq!(
        (after.last_seq, bytes(&after)),
        (before.last_seq, bytes(&before))
    );

    // A replacement on an empty session: as the stream, FAILED_PRECONDITION naming number 1.
    let mut first = msgs[0];
    first.op = pb::Op::ReplaceLast as i32;
    let got = catch_up(&mut rep, vec![entry(open("D", "1m"), true, 0, &[first])]).await;
    let e = got[0].error.as_ref().unwrap();
    assert_eq!(
        (Code::from_i32(e.code), e.expected_seq),
        (Code::FailedPrecondition, 1)
    );
    assert_eq!(e.message, "replace_last: the session has no bar to replace");
    let s = client
        .get_snapshot(pb::SnapshotRequest {
            symbol: "D".into(),
            timeframe: "1m".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        s.code(),
        Code::NotFound,
        "a refused fresh entry creates nothing"
    );
}

/// A fresh catch-up from a base `B` standing at `A`, then messages `M`, leaves the session a
/// stream of `B` as appends (1..len(B)) then `M` leaves: the same snapshot bit for bit, and the
/// same update documents for the stream messages after it (the first a replacement of the last
/// base bar) — only the numbers differ.
#[tokio::test]
async fn fresh_catch_up_from_a_base_equals_streaming() {
    let server = TestServer::default().await;
    let mut client = server.client().await;
    let mut rep = replica(server.channel().await);
    let all = sample("BTCUSD-BITSTAMP_30m.csv");
    let repair = pb::EngineConfig {
        validation: Some(pb::ValidationConfig {
            allow_non_positive_prices: None,
            repair: Some(true),
        }),
        ..Default::default()
    };
    // (base length, messages in the catch-up itself, after_seq, with repair)
    let cases: [(usize, usize, u64, bool); 7] = [
        (1, 0, 0, false),
        (2, 0, 7, false),
        (300, 0, 1_000, false),
        (301, 1, 0, false),
        (777, 4, 1 << 40, false),
        (1100, 0, 3, true),
        (1500, 9, 12_345, true),
    ];
    for (c, &(n, j, a, with_repair)) in cases.iter().enumerate() {
        let mut bars = all.clone();
        if with_repair {
            // Bars to repair in the base and after it: high below the close.
            for i in [n / 2, n - 1, n + 2] {
                bars[i].high = bars[i].close - 1.0;
            }
        }
        let base = &bars[..n];
        let ops = after_base(&bars, n, 30);
        let o = pb::OpenSession {
            config: with_repair.then(|| repair.clone()),
            ..open(&format!("B{c}"), "1m")
        };
        let (streamed, caught) = (
            pb::OpenSession {
                timeframe: "1m".into(),
                ..o.clone()
            },
            pb::OpenSession {
                timeframe: "2m".into(),
                ..o.clone()
            },
        );

        // The reference: the base streamed as appends 1..n, then the messages.
        let (mut s, _) = Conn::open(
            &mut client,
            pb::StreamRequest {
                kind: Some(pb::stream_request::Kind::Open(streamed)),
            },
        )
        .await
        .unwrap();
        for (i, b) in base.iter().enumerate() {
            update_of(&s.bar(i as u64 + 1, pb::Op::Append, b).await);
        }
        let reference = numbered(&ops, n as u64 + 1);
        for m in &reference[..j] {
            update_of(&s.request(req(m)).await.unwrap());
        }

        // The caught-up session: the base standing at `a`, the first messages in the same
        // call (some in a second, plain catch-up).
        let msgs = numbered(&ops, a + 1);
        let split = j / 2;
        let got = catch_up(
            &mut rep,
            vec![based(caught.clone(), columns(base), a, &msgs[..split])],
        )
        .await;
        let appended = |k: usize| ops[..k].iter().filter(|x| x.0 == pb::Op::Append).count();
        assert_eq!(got[0].error, None, "case {c}");
        assert_eq!(
            (got[0].last_seq, got[0].bars),
            (a + split as u64, (n + appended(split)) as u64),
            "case {c}"
        );
        if j > split {
            let got = catch_up(
                &mut rep,
                vec![entry(
                    caught.clone(),
                    false,
                    a + split as u64,
                    &msgs[split..j],
                )],
            )
            .await;
            assert_eq!(got[0].error, None, "case {c}");
            assert_eq!(got[0].last_seq, a + j as u64);
        }
        let (x, y) = (
            snapshot(&mut client, &o.symbol, "1m").await,
            snapshot(&mut client, &o.symbol, "2m").await,
        );
        assert_eq!(
            (x.last_seq, y.last_seq),
            ((n + j) as u64, a + j as u64),
            "case {c}"
        );
        assert_eq!(bytes(&x), bytes(&y), "case {c}");
        let x = x.analysis.unwrap();
        assert_eq!(x.repairs.is_empty(), !with_repair, "case {c}");

        // The stream goes on from a + j + 1 with the same documents.
        let (mut t, opened) = Conn::open(
            &mut client,
            pb::StreamRequest {
                kind: Some(pb::stream_request::Kind::Open(pb::OpenSession {
                    resume: true,
                    ..caught
                })),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (opened.last_seq, opened.bars),
            (a + j as u64, (n + appended(j)) as u64)
        );
        for (k, (m, r)) in msgs.iter().zip(&reference).enumerate().skip(j) {
            let (u, v) = (
                s.request(req(r)).await.unwrap(),
                t.request(req(m)).await.unwrap(),
            );
            assert_eq!(v.seq, a + 1 + k as u64);
            assert_eq!(
                update_of(&u).encode_to_vec(),
                update_of(&v).encode_to_vec(),
                "case {c}, message {k}"
            );
        }
        let (x, y) = (
            snapshot(&mut client, &o.symbol, "1m").await,
            snapshot(&mut client, &o.symbol, "2m").await,
        );
        assert_eq!(y.last_seq, a + ops.len() as u64);
        assert_eq!(bytes(&x), bytes(&y), "case {c}");
    }
}

/// The refusals of a base: on an entry that is not fresh, columns of different lengths, bad
/// base bars (the violations a stream's appends get), and what follows it; each leaves the
/// session as it was, and a refused fresh entry creates nothing.
#[tokio::test]
async fn base_refusals_change_nothing() {
    let server = TestServer::default().await;
    let mut client = server.client().await;
    let mut rep = replica(server.channel().await);
    let bars = sample("BTCUSD-BITSTAMP_30m.csv")[..200].to_vec();
    let base = &bars[..100];
    let tail = numbered(&after_base(&bars, 100, 10), 501);
    let got = catch_up(
        &mut rep,
        vec![based(open("A", "1m"), columns(base), 500, &tail)],
    )
    .await;
    assert_eq!(got[0].error, None);
    let (last, count) = (got[0].last_seq, got[0].bars);
    assert_eq!(last, 500 + tail.len() as u64);
    let before = snapshot(&mut client, "A", "1m").await;

    let mut uneven = columns(base);
    uneven.open.pop();
    uneven.volume.push(1.0);
    let mut bad_high = base.to_vec();
    bad_high[40].high = bad_high[40].low - 1.0;
    let mut duplicate = base.to_vec();
    duplicate[60].time = duplicate[59].time;
    let same_time = numbered(&[(pb::Op::Append, base[99])], 1001);
    let mut gap = numbered(&after_base(&bars, 100, 3), 1001);
    gap[1].seq += 1;
    let bad_config = pb::OpenSession {
        config: Some(pb::EngineConfig {
            macd: Some(pb::MacdConfig {
                fast_period: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..open("A", "1m")
    };
    let got = catch_up(
        &mut rep,
        vec![
            pb::SessionCatchUp {
                base: Some(columns(&bars[..3])),
                ..entry(open("A", "1m"), false, last, &[])
            },
            pb::SessionCatchUp {
                base: Some(columns(&bars[..3])),
                ..entry(open("NOPE", "1m"), false, 0, &[])
            },
            based(open("A", "1m"), uneven, 7, &[]),
            based(open("A", "1m"), columns(&bad_high), 7, &[]),
            based(open("A", "1m"), columns(&duplicate), 7, &[]),
            based(open("A", "1m"), columns(base), 1000, &same_time),
            based(open("A", "1m"), columns(base), 1000, &gap),
            based(open("A", "1m"), pb::Bars::default(), 5, &[]),
            based(bad_config, columns(base), 5, &[]),
            based(open("N", "1m"), columns(&bad_high), 0, &[]),
        ],
    )
    .await;
    assert_eq!(got.len(), 10);
    for (k, g) in got.iter().enumerate() {
        assert!(g.error.is_some(), "{k}: {g:?}");
        let e = g.error.as_ref().unwrap();
        let want = if k == 8 {
            (Code::InvalidArgument, "config.macd.fast_period")
        } else {
            (Code::InvalidArgument, "")
        };
        assert_eq!(Code::from_i32(e.code), want.0, "{k}: {e:?}");
        let standing = match g.session.as_str() {
            "A/1m" => (last, count),
            _ => (0, 0),
        };
        assert_eq!((g.last_seq, g.bars), standing, "{k}: {g:?}");
    }
    let err = |k: usize| got[k].error.as_ref().unwrap();
    let not_fresh = "invalid catch-up: base is only for a fresh session";
    for k in [0, 1] {
        assert_eq!(err(k).message, not_fresh);
        assert_eq!(only(err(k)), ("base", "", not_fresh, -1));
        assert_eq!(err(k).expected_seq, 0);
    }
    assert_eq!(got[1].session, "NOPE/1m");
    assert_eq!(
        err(2).message,
        "invalid bars: columns of different lengths: base.open has 99 values, base.time has \
         100; base.volume has 101 values, base.time has 100"
    );
    let fields: Vec<(&str, &str, &str, i64)> = err(2)
        .field_violations
        .iter()
        .map(|v| {
            (
                v.field.as_str(),
                v.reason.as_str(),
                v.description.as_str(),
                v.index,
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("base.open", "", "has 99 values, base.time has 100", -1),
            ("base.volume", "", "has 101 values, base.time has 100", -1)
        ]
    );

    // Bad base bars: what a stream's appends of the same bars get.
    for (k, bad, i) in [(3, &bad_high, 40), (4, &duplicate, 60)] {
        let (mut s, _) = Conn::open(&mut client, open_msg(&format!("REF{k}"), "1m", false))
            .await
            .unwrap();
        for (j, b) in bad[..i].iter().enumerate() {
            update_of(&s.bar(j as u64 + 1, pb::Op::Append, b).await);
        }
        let r = s.bar(i as u64 + 1, pb::Op::Append, &bad[i]).await;
        let streamed = error_of(&r);
        assert_eq!(err(k).message, streamed.message, "{k}");
        assert_eq!(err(k).field_violations, streamed.field_violations, "{k}");
        assert!(
            err(k)
                .field_violations
                .iter()
                .all(|v| v.index == i64::try_from(i).unwrap()),
            "{k}: {:?}",
            err(k)
        );
    }
    assert!(err(3)
        .field_violations
        .iter()
        .any(|v| (v.field.as_str(), v.reason.as_str()) == ("bars[40].high", "high_range")));
    assert_eq!(
        (
            err(4).field_violations[0].field.as_str(),
            err(4).field_violations[0].reason.as_str()
        ),
        ("bars[60].time", "time_duplicate")
    );
    // The first message after the base: the session's bar 100.
    let v = &err(5).field_violations[0];
    assert_eq!(
        (v.field.as_str(), v.reason.as_str(), v.index),
        ("bars[100].time", "time_duplicate", 100)
    );
    assert_eq!(
        err(6).message,
        "invalid bars: seq_order: expected sequence 1002, got 1003"
    );
    assert_eq!(
        only(err(6)),
        (
            "bars[1].seq",
            "seq_order",
            "seq_order: expected sequence 1002, got 1003",
            -1
        )
    );
    // An empty base is no base: after_seq must be 0.
    assert_eq!(
        err(7).message,
        "invalid catch-up: after_seq must be 0 for a fresh session, got 5"
    );
    assert_eq!(
        only(err(7)),
        ("after_seq", "", "must be 0 for a fresh session, got 5", -1)
    );
    assert_eq!(err(8).field_violations[0].field, "config.macd.fast_period");

    let after = snapshot(&mut client, "A", "1m").await;
    assert_eq!(
        (after.last_seq, bytes(&after)),
        (before.last_seq, bytes(&before))
    );
    for name in ["NOPE", "N"] {
        let s = client
            .get_snapshot(pb::SnapshotRequest {
                symbol: name.into(),
                timeframe: "1m".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::NotFound, "{name}");
    }
    // An empty base on an entry that is not fresh is no base.
    let got = catch_up(
        &mut rep,
        vec![pb::SessionCatchUp {
            base: Some(pb::Bars::default()),
            ..entry(open("A", "1m"), false, last, &[])
        }],
    )
    .await;
    assert_eq!((got[0].error.as_ref(), got[0].last_seq), (None, last));
}

/// `CloseSessions` removes what it names (unknown names are no error); a stream attached to a
/// closed session ends with `NOT_FOUND` at its next message.
#[tokio::test]
async fn close_sessions() {
    let server = TestServer::default().await;
    let mut client = server.client().await;
    let mut rep = replica(server.channel().await);
    let bars = sample("BTCUSD-BITSTAMP_30m.csv");
    let (mut conn, _) = Conn::open(&mut client, open_msg("X", "1m", false))
        .await
        .unwrap();
    conn.bar(1, pb::Op::Append, &bars[0]).await;
    catch_up(&mut rep, vec![entry(open("Y", "1m"), true, 0, &[])]).await;
    let name = |s: &str| pb::SessionName {
        symbol: s.into(),
        timeframe: "1m".into(),
    };
    let r = rep
        .close_sessions(pb::CloseSessionsRequest {
            sessions: vec![name("X"), name("Z"), name("Y")],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.engine.as_str(), r.closed, r.sessions), ("rust", 2, 0));
    let s = conn
        .request(bar_req(2, pb::Op::Append, &bars[1]))
        .await
        .unwrap_err();
    assert_eq!(
        (s.code(), s.message()),
        (Code::NotFound, "session X/1m not found")
    );
}

/// `server.max_sessions`: one more session closes the least recently used one with no stream
/// attached; with every one attached, the open is refused.
#[tokio::test]
async fn max_sessions_evicts_the_least_recently_used_idle_session() {
    let mut cfg = config();
    cfg.server.max_sessions = 2;
    let server = TestServer::start(cfg).await;
    let mut client = server.client().await;
    let (_a, _) = Conn::open(&mut client, open_msg("A", "1m", false))
        .await
        .unwrap();
    let b = Conn::open(&mut client, open_msg("B", "1m", false))
        .await
        .unwrap();
    let s = Conn::first(&mut client, open_msg("C", "1m", false))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted);
    assert_eq!(
        s.message(),
        "the engine holds server.max_sessions (2) sessions, each with a stream attached"
    );
    drop(b);
    // The server sees B's stream end, then B makes room.
    let mut opened = None;
    for _ in 0..100 {
        match Conn::open(&mut client, open_msg("C", "1m", false)).await {
            Ok(c) => {
                opened = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
    assert!(opened.is_some());
    let s = client
        .get_snapshot(pb::SnapshotRequest {
            symbol: "B".into(),
            timeframe: "1m".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound);
    snapshot(&mut client, "A", "1m").await;
}

fn authed<T>(m: T, token: &str) -> Request<T> {
    let mut r = Request::new(m);
    r.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    r
}

/// With an operator token, administrative calls need it: the client token gets
/// `PERMISSION_DENIED`, no token UNAUTHENTICATED; trading calls take either token.
#[tokio::test]
async fn operator_role() {
    let mut cfg = config();
    cfg.server.auth_token = "client-t".into();
    cfg.server.operator_token = "operator-t".into();
    let server = TestServer::start(cfg).await;
    let channel = server.channel().await;
    let mut client = TradingClient::new(channel.clone());
    let mut rep = replica(channel);
    let s = rep
        .catch_up(authed(pb::CatchUpRequest::default(), "client-t"))
        .await
        .unwrap_err();
    assert_eq!(
        (s.code(), s.message()),
        (Code::PermissionDenied, "operator credential required")
    );
    let s = client
        .update_config(authed(pb::UpdateConfigRequest::default(), "client-t"))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied);
    let s = rep
        .close_sessions(Request::new(pb::CloseSessionsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    rep.catch_up(authed(pb::CatchUpRequest::default(), "operator-t"))
        .await
        .unwrap();
    client
        .update_config(authed(pb::UpdateConfigRequest::default(), "operator-t"))
        .await
        .unwrap();
    for t in ["client-t", "operator-t"] {
        client
            .get_info(authed(pb::InfoRequest {}, t))
            .await
            .unwrap();
    }
    let s = client
        .get_info(authed(pb::InfoRequest {}, "nope"))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
}

/// `config_version`: 16 hex digits of the configuration's digest, the same in `GetInfo`, `GetConfig`
/// and `UpdateConfig` for the same configuration, another for another.
#[tokio::test]
async fn config_version() {
    let server = TestServer::default().await;
    let mut client = server.client().await;
    let info = client
        .get_info(pb::InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let got = client
        .get_config(pb::GetConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    let v = info.config_version.clone();
    assert_eq!(v.len(), 16);
    assert!(
        v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{v}"
    );
    assert_eq!(got.config_version, v);
    assert_eq!(
        trading_server::convert::config_version(got.config.as_ref().unwrap()),
        v
    );
    let changed = client
        .update_config(pb::UpdateConfigRequest {
            config: Some(pb::EngineConfig {
                macd: Some(pb::MacdConfig {
                    fast_period: Some(5),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(changed.config_version, v);
    let back = client
        .update_config(pb::UpdateConfigRequest {
            config: Some(pb::EngineConfig {
                macd: Some(pb::MacdConfig {
                    fast_period: Some(12),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.config_version, v);
}

/// A thousand bad bars: a clean `INVALID_ARGUMENT` with 20 violations and the truncated entry.
#[tokio::test]
async fn a_thousand_bad_bars() {
    let server = TestServer::default().await;
    let mut client = server.client().await;
    let bars: Vec<Bar> = (0..1000)
        .map(|i| Bar::new(i * 60_000, 1.0, 0.5, 1.0, 1.0, 1.0))
        .collect();
    let s = client
        .analyze(analyze_request(&bars, None))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(s.message().starts_with("invalid bars: "), "{}", s.message());
    let d = s.get_details_bad_request().unwrap();
    assert_eq!(d.field_violations.len(), 21);
    let last = &d.field_violations[20];
    assert_eq!(last.field, "bars");
    assert!(
        last.description.starts_with("truncated: ")
            && last.description.ends_with(" more violations not listed")
    );
}

/// `AnalyzeRequest` with `with_macd` (field 3, a varint) sent as text: the wrong wire type.
#[derive(Clone, PartialEq, prost::Message)]
struct WrongAnalyze {
    #[prost(string, tag = "3")]
    with_macd: String,
}

/// `StreamRequest` with `open` (field 1, a message) sent as a varint.
#[derive(Clone, PartialEq, prost::Message)]
struct WrongStream {
    #[prost(uint64, tag = "1")]
    open: u64,
}

/// Bytes that are not a valid request: `INVALID_ARGUMENT` naming the message type, no library
/// text; a stream ends with that status.
#[tokio::test]
async fn undecodable_requests() {
    use tonic::codegen::http::uri::PathAndQuery;
    let server = TestServer::default().await;
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let s = grpc
        .unary::<WrongAnalyze, pb::AnalyzeResponse, _>(
            Request::new(WrongAnalyze {
                with_macd: "yes".into(),
            }),
            PathAndQuery::from_static("/trading.v1.Trading/Analyze"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (s.code(), s.message()),
        (
            Code::InvalidArgument,
            "the request is not a valid trading.v1.AnalyzeRequest"
        )
    );
    grpc.ready().await.unwrap();
    let s = grpc
        .unary::<WrongAnalyze, pb::CatchUpResponse, _>(
            Request::new(WrongAnalyze {
                with_macd: "x".into(),
            }),
            PathAndQuery::from_static("/trading.v1.Replica/CatchUp"),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    // CatchUpRequest has no field 3: an unknown field is skipped, not an error.
    assert!(s.is_ok(), "{s:?}");
    grpc.ready().await.unwrap();
    let out = tokio_stream::iter(vec![WrongStream { open: 7 }]);
    let r = grpc
        .streaming::<_, WrongStream, pb::StreamResponse, _>(
            Request::new(out),
            PathAndQuery::from_static("/trading.v1.Trading/Stream"),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    let s = match r {
        Err(s) => s,
        Ok(resp) => resp.into_inner().message().await.unwrap_err(),
    };
    assert_eq!(
        (s.code(), s.message()),
        (
            Code::InvalidArgument,
            "the request is not a valid trading.v1.StreamRequest"
        )
    );
}

/// Negative zeros cross the wire as they are, and a stream gives the same bits as a batch:
/// the MACD histogram at `macd.histogram_scale = 5e-324` (products that underflow to -0.0),
/// `-0.0` prices, and repaired highs and lows.
#[tokio::test]
async fn negative_zero_is_kept_and_equal_in_stream_and_batch() {
    let server = TestServer::default().await;
    let mut client = server.client().await;
    let overrides = pb::EngineConfig {
        validation: Some(pb::ValidationConfig {
            allow_non_positive_prices: Some(true),
            repair: Some(true),
        }),
        macd: Some(pb::MacdConfig {
            histogram_scale: Some(5e-324),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut bars = sample("BTCUSD-BITSTAMP_30m.csv")[..200].to_vec();
    // Zero prices, some of them negative zeros, some bars with high and low to repair.
    for (i, b) in bars.iter_mut().enumerate().skip(150) {
        let z = if i % 2 == 0 { -0.0 } else { 0.0 };
        *b = Bar::new(b.time, z, z, z, z, 1.0);
        if i % 7 == 0 {
            // Repaired: high becomes max(open, high, low, close), a zero of either sign.
            (b.high, b.low) = (-1.0, -2.0);
            b.open = if i % 3 == 0 { 0.0 } else { -0.0 };
        }
    }
    let batch = client
        .analyze(pb::AnalyzeRequest {
            bars: Some(columns(&bars)),
            config: Some(overrides.clone()),
            with_macd: true,
        })
        .await
        .unwrap()
        .into_inner()
        .analysis
        .unwrap();
    let hist = &batch.macd.as_ref().unwrap().histogram;
    assert!(
        hist.iter().any(|h| h.to_bits() == (-0.0f64).to_bits()),
        "the case is exercised"
    );
    assert!(!batch.repairs.is_empty());
    assert!(batch
        .repairs
        .iter()
        .any(|r| r.new_high.to_bits() == (-0.0f64).to_bits()));

    let mut m = open_msg("Z", "1m", false);
    if let Some(pb::stream_request::Kind::Open(o)) = &mut m.kind {
        o.config = Some(overrides);
        o.with_macd = true;
    }
    let (mut conn, _) = Conn::open(&mut client, m).await.unwrap();
    for (i, b) in bars.iter().enumerate() {
        let r = conn.bar(i as u64 + 1, pb::Op::Append, b).await;
        let h = update_of(&r).macd.unwrap().histogram;
        assert_eq!(
            h.to_bits(),
            hist[i].to_bits(),
            "bar {i}: {h} vs {}",
            hist[i]
        );
    }
    let snap = snapshot(&mut client, "Z", "1m").await;
    assert_eq!(
        snap.analysis.unwrap().encode_to_vec(),
        batch.encode_to_vec()
    );
}

/// Throughput of `CatchUp` (batches of 4,096, as `system.catch_up_batch_bars`) against a stream
/// with its messages pipelined: `cargo test --profile ci --test replica -- --ignored
/// --nocapture`. A measurement, not a check.
#[tokio::test]
#[ignore = "a measurement, run by hand"]
async fn catch_up_speed() {
    let server = TestServer::default().await;
    let mut client = server.client().await;
    let mut rep = replica(server.channel().await);
    // The sample's prices over and over, a minute apart.
    let base = sample("BTCUSD-BITSTAMP_30m.csv");
    let bars: Vec<Bar> = (0..100_000)
        .map(|i| Bar {
            time: i64::try_from(i).unwrap() * 60_000,
            ..base[i % base.len()]
        })
        .collect();
    let msgs: Vec<pb::BarMessage> = bars
        .iter()
        .enumerate()
        .map(|(i, b)| pb::BarMessage {
            seq: i as u64 + 1,
            op: pb::Op::Append as i32,
            bar: Some(bar_msg(b)),
        })
        .collect();
    let (conn, _) = Conn::open(&mut client, open_msg("P", "1m", false))
        .await
        .unwrap();
    let Conn { tx, mut rx } = conn;
    let t = Instant::now();
    let sender = tokio::spawn({
        let msgs = msgs.clone();
        async move {
            for m in &msgs {
                tx.send(req(m)).await.unwrap();
            }
            tx
        }
    });
    for _ in 0..msgs.len() {
        let r = rx.message().await.unwrap().unwrap();
        assert!(matches!(r.kind, Some(pb::stream_response::Kind::Update(_))));
    }
    let streamed = t.elapsed();
    drop(sender.await.unwrap());
    let t = Instant::now();
    let mut after = 0;
    for (i, chunk) in msgs.chunks(4096).enumerate() {
        let o = pb::OpenSession {
            with_macd: false,
            ..open("P", "2m")
        };
        let got = catch_up(&mut rep, vec![entry(o, i == 0, after, chunk)]).await;
        assert_eq!(got[0].error, None);
        after += chunk.len() as u64;
    }
    let caught = t.elapsed();
    eprintln!(
        "100000 bars: stream (pipelined) {:.0} bars/s, CatchUp {:.0} bars/s ({:.1}x)",
        1e5 / streamed.as_secs_f64(),
        1e5 / caught.as_secs_f64(),
        streamed.as_secs_f64() / caught.as_secs_f64()
    );
    let (a, b) = (
        snapshot(&mut client, "P", "1m").await,
        snapshot(&mut client, "P", "2m").await,
    );
    assert_eq!(bytes(&a), bytes(&b));
}

/// The one violation of a stream error.
fn only(e: &pb::StreamError) -> (&str, &str, &str, i64) {
    assert_eq!(e.field_violations.len(), 1, "{e:?}");
    violation(e)
}
