//! The server as a client sees it: real gRPC over loopback against an in-process server
//! (`docs/GRPC.md`, every rule).

mod common;

use chan_core::kline::validate_series;
use chan_core::{analyze, Bar, ChanError, EngineConfig};
use common::*;
use prost::Message;
use tokio_stream::StreamExt;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use trading_config::FileConfig;
use trading_server::pb;

const SAMPLES: [&str; 3] = [
    "BTCUSD-BITSTAMP_30m.csv",
    "AAPL_1d_head1200.csv",
    "000001.SH_1d_head1200.csv",
];

fn macd_override(fast: u32) -> pb::EngineConfig {
    pb::EngineConfig {
        macd: Some(pb::MacdConfig {
            fast_period: Some(fast),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Analyze equals the core's document on real samples, field by field, under several
/// configurations (MACD series included); bad bars of a real sample give the core's violations.
#[tokio::test]
async fn analyze_equals_the_core_document() {
    let server = TestServer::default().await;
    let mut client = server.client().await;
    let configs: Vec<(Option<pb::EngineConfig>, bool)> = vec![
        (None, false),
        (None, true),
        (
            Some(pb::EngineConfig {
                validation: Some(pb::ValidationConfig {
                    repair: Some(true),
                    allow_non_positive_prices: None,
                }),
                macd: Some(pb::MacdConfig {
                    seed: Some("sma".into()),
                    histogram_scale: Some(1.0),
                    ..Default::default()
                }),
                pen: Some(pb::PenConfig {
                    definition: Some("traditional".into()),
                    strict_validation: Some(false),
                }),
                segment: Some(pb::SegmentConfig {
                    feature_sequence_strict: Some(false),
                    handle_inclusion: None,
                }),
                signal: Some(pb::SignalConfig {
                    strength: Some("peak".into()),
                    divergence_rate: Some(0.9),
                    min_pivots: Some(2),
                }),
                structure: Some(pb::StructureConfig { degrees: Some(3) }),
            }),
            true,
        ),
    ];
    let mut compared = 0;
    for name in SAMPLES {
        let bars = sample(name);
        for (overrides, with_macd) in &configs {
            let cfg = trading_server::convert::apply_overrides(
                &EngineConfig::default(),
                overrides.as_ref(),
            )
            .unwrap();
            let req = pb::AnalyzeRequest {
                bars: Some(columns(&bars)),
                config: overrides.clone(),
                with_macd: *with_macd,
            };
            let answer = client.analyze(req).await;
            match analyze(&bars, &cfg, *with_macd) {
                Ok(expected) => {
                    let r = answer.unwrap().into_inner();
                    assert_eq!(r.engine, "rust");
                    let a = r.analysis.unwrap();
                    assert_eq!(to_document(&a), expected.document(), "{name}");
                    assert_eq!(a.macd.is_some(), *with_macd);
                    assert!(!a.pens.is_empty() && !a.segments.is_empty(), "{name}");
                    compared += 1;
                }
                Err(e) => {
                    // The SSE sample has bad bars: rejected whole, every one named.
                    let s = answer.unwrap_err();
                    assert_eq!(s.code(), Code::InvalidArgument);
                    assert_eq!(s.message(), e.to_string());
                    let expected: Vec<(String, String)> = e
                        .violations()
                        .iter()
                        .map(|v| {
                            (
                                format!("bars[{}].{}", v.index.unwrap(), v.field),
                                format!("{}: {}", v.rule, v.message),
                            )
                        })
                        .collect();
                    assert!(!expected.is_empty());
                    assert_eq!(violations(&s), expected, "{name}");
                }
            }
        }
    }
    // Every sample analyzed at least under the repairing configuration.
    assert!(compared >= 7, "{compared}");
    server.stop().await.unwrap();
}

fn b(t: i64, o: f64, h: f64, l: f64, c: f64) -> Bar {
    Bar::new(t, o, h, l, c, 1.0)
}

/// Every rule of spec §1 gives `INVALID_ARGUMENT` with one field violation per broken rule.
#[tokio::test]
async fn every_bar_rule_is_a_named_violation() {
    let server = TestServer::default().await;
    let mut client = server.client().await;
    let bars = vec![
        b(0, 1.0, 2.0, 0.5, 1.5),
        b(0, 1.0, 2.0, 0.5, 1.5),       // time_duplicate
        b(-5, 1.0, 2.0, 0.5, 1.5),      // time_order
        b(10, f64::NAN, 2.0, 0.5, 1.5), // finite (open)
        b(11, 1.0, f64::INFINITY, 0.5, 1.5),
        b(12, -1.0, 2.0, 0.5, 1.5), // positive_price, low_range
        b(13, 1.0, 1.2, 0.5, 1.5),  // high_range
        b(14, 1.0, 2.0, 1.1, 1.5),  // low_range
        Bar::new(15, 1.0, 2.0, 0.5, 1.5, -3.0),
        Bar::new(16, 1.0, 2.0, 0.5, 1.5, f64::NAN),
        b(17, 1.0, 0.5, 2.0, 1.5), // high < low: high_range and low_range
    ];
    let s = client
        .analyze(analyze_request(&bars, None))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(
        s.message().starts_with("invalid bars: bar 1: time"),
        "{}",
        s.message()
    );
    let got = violations(&s);
    let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "bars[1].time",
            "bars[2].time",
            "bars[3].open",
            "bars[4].high",
            "bars[5].open",
            "bars[5].low",
            "bars[6].high",
            "bars[7].low",
            "bars[8].volume",
            "bars[9].volume",
            "bars[10].high",
            "bars[10].low",
        ]
    );
    let rules: Vec<&str> = got
        .iter()
        .map(|(_, d)| d.split(':').next().unwrap())
        .collect();
    assert_eq!(
        rules,
        [
            "time_duplicate",
            "time_order",
            "finite",
            "finite",
            "positive_price",
            "low_range",
            "high_range",
            "low_range",
            "non_negative_volume",
            "finite",
            "high_range",
            "low_range",
        ]
    );
    assert_eq!(
        got[6].1,
        "high_range: bar 6: high 1.2 is below max(open, close) 1.5"
    );
    assert_eq!(got[2].1, "finite: bar 3: open is NaN, not a finite number");
    // The descriptions are the core's messages.
    let core = validate_series(&bars, &chan_core::config::ValidationConfig::default()).unwrap_err();
    assert_eq!(
        s.message(),
        ChanError::InvalidBars(core.clone()).to_string()
    );
    for (v, (_, d)) in core.iter().zip(&got) {
        assert_eq!(d, &format!("{}: {}", v.rule, v.message));
    }

    // An empty series; a missing one.
    for req in [
        analyze_request(&[], None),
        pb::AnalyzeRequest {
            bars: None,
            config: None,
            with_macd: false,
        },
    ] {
        let s = client.analyze(req).await.unwrap_err();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(
            violations(&s),
            [(
                "bars".to_string(),
                "non_empty: the series is empty: at least one bar is required".to_string()
            )]
        );
        assert_eq!(
            s.message(),
            "invalid bars: the series is empty: at least one bar is required"
        );
    }

    // Columns of different lengths.
    let mut cols = columns(&bars[..2]);
    cols.close.pop();
    cols.volume.push(1.0);
    let s = client
        .analyze(pb::AnalyzeRequest {
            bars: Some(cols),
            config: None,
            with_macd: false,
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    let fields: Vec<String> = violations(&s).into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["bars.close", "bars.volume"]);

    // More than 20 violations: the message and the details list the first 20, the details
    // then one entry for the rest.
    let many: Vec<Bar> = (0..30).map(|i| b(i, 1.0, 2.0, 0.5, -1.0)).collect();
    let s = client
        .analyze(analyze_request(&many, None))
        .await
        .unwrap_err();
    let v = violations(&s);
    assert_eq!(v.len(), 21);
    assert_eq!(
        v[20],
        (
            "bars".to_string(),
            "truncated: 40 more violations not listed".to_string()
        )
    );
    assert!(s.message().ends_with("… and 40 more"), "{}", s.message());

    // With repair on, high/low are fixed and reported instead.
    let repair = pb::EngineConfig {
        validation: Some(pb::ValidationConfig {
            repair: Some(true),
            allow_non_positive_prices: None,
        }),
        ..Default::default()
    };
    let a = client
        .analyze(analyze_request(&[b(0, 1.0, 1.2, 0.5, 1.5)], Some(repair)))
        .await
        .unwrap()
        .into_inner()
        .analysis
        .unwrap();
    assert_eq!(a.repairs.len(), 1);
    assert_eq!((a.repairs[0].new_high, a.repairs[0].new_low), (1.5, 0.5));
    server.stop().await.unwrap();
}

/// Bad configuration overrides name the key; `UpdateConfig` validates as a whole.
#[tokio::test]
async fn bad_overrides_name_the_key() {
    let server = TestServer::default().await;
    let mut client = server.client().await;
    let bars = sample("BTCUSD-BITSTAMP_30m.csv");
    let cases: Vec<(pb::EngineConfig, &str)> = vec![
        (macd_override(0), "config.macd.fast_period"),
        (macd_override(40), "config.macd.fast_period"),
        (
            pb::EngineConfig {
                macd: Some(pb::MacdConfig {
                    seed: Some("ema".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "config.macd.seed",
        ),
        (
            pb::EngineConfig {
                macd: Some(pb::MacdConfig {
                    histogram_scale: Some(f64::INFINITY),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "config.macd.histogram_scale",
        ),
        (
            pb::EngineConfig {
                pen: Some(pb::PenConfig {
                    definition: Some("old".into()),
                    strict_validation: None,
                }),
                ..Default::default()
            },
            "config.pen.definition",
        ),
        (
            pb::EngineConfig {
                signal: Some(pb::SignalConfig {
                    divergence_rate: Some(0.0),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "config.signal.divergence_rate",
        ),
    ];
    for (o, field) in cases {
        let s = client
            .analyze(analyze_request(&bars[..50], Some(o.clone())))
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::InvalidArgument, "{field}");
        let v = violations(&s);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, field);
        assert!(!v[0].1.is_empty());
        assert!(
            s.message().starts_with("invalid configuration: "),
            "{}",
            s.message()
        );
        let s = client
            .update_config(pb::UpdateConfigRequest { config: Some(o) })
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(violations(&s)[0].0, field);
    }
    // Nothing of a rejected update was applied.
    let c = client
        .get_config(pb::GetConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        config_of(c.config.as_ref().unwrap()),
        EngineConfig::default()
    );
    server.stop().await.unwrap();
}

/// Streams by appends and by provisional bars replaced equal the batch analysis; snapshots too.
#[tokio::test]
async fn streams_equal_batch() {
    let server = TestServer::default().await;
    let mut client = server.client().await;
    let bars = sample("BTCUSD-BITSTAMP_30m.csv");
    let (mut conn, opened) = Conn::open(&mut client, open_msg("BTC/USD", "30m", false))
        .await
        .unwrap();
    assert_eq!(
        (
            opened.session.as_str(),
            opened.last_seq,
            opened.bars,
            opened.resumed
        ),
        ("BTC/USD/30m", 0, 0, false)
    );
    assert_eq!(
        config_of(opened.config.as_ref().unwrap()),
        EngineConfig::default()
    );
    let mut mirror = Mirror::default();
    let mut seq = 0;
    let mut tail_changes = 0;
    for (i, bar) in bars.iter().enumerate() {
        if i % 3 == 1 {
            // A provisional bar first (a still-forming candle), then the real one replaces it.
            let mid = f64::midpoint(bar.high, bar.low);
            let early = Bar::new(
                bar.time,
                bar.open,
                bar.open.max(mid),
                bar.open.min(mid),
                mid,
                0.0,
            );
            seq += 1;
            let r = conn.bar(seq, pb::Op::Append, &early).await;
            mirror.apply(update_of(&r));
            seq += 1;
            let r = conn.bar(seq, pb::Op::ReplaceLast, bar).await;
            let u = update_of(&r);
            assert!(u.replaced);
            assert_eq!(u.index, i as u64);
            mirror.apply(u);
        } else {
            seq += 1;
            let r = conn.bar(seq, pb::Op::Append, bar).await;
            let u = update_of(&r);
            assert!(!u.replaced);
            assert_eq!(u.index, i as u64);
            tail_changes += u64::from(u.tail.is_some());
            mirror.apply(u);
        }
    }
    assert!(tail_changes > 10);
    let batch = client
        .analyze(analyze_request(&bars, None))
        .await
        .unwrap()
        .into_inner()
        .analysis
        .unwrap();
    mirror.assert_equals(&batch);
    let snap = client
        .get_snapshot(pb::SnapshotRequest {
            symbol: "BTC/USD".into(),
            timeframe: "30m".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(snap.engine, "rust");
    assert_eq!(snap.session, "BTC/USD/30m");
    assert_eq!(snap.last_seq, seq);
    assert_eq!(snap.analysis.unwrap(), batch);
    drop(conn);

    // With MACD series: the snapshot equals Analyze with_macd; updates carry the bar's MACD.
    let (mut conn, _) = Conn::open(
        &mut client,
        pb::StreamRequest {
            kind: Some(pb::stream_request::Kind::Open(pb::OpenSession {
                symbol: "AAPL".into(),
                timeframe: "1d".into(),
                config: Some(macd_override(5)),
                with_macd: true,
                resume: false,
            })),
        },
    )
    .await
    .unwrap();
    let bars = sample("AAPL_1d_head1200.csv");
    for (i, bar) in bars.iter().enumerate() {
        let r = conn.bar(i as u64 + 1, pb::Op::Append, bar).await;
        assert!(update_of(&r).macd.is_some());
    }
    let snap = client
        .get_snapshot(pb::SnapshotRequest {
            symbol: "AAPL".into(),
            timeframe: "1d".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .analysis
        .unwrap();
    let batch = client
        .analyze(pb::AnalyzeRequest {
            bars: Some(columns(&bars)),
            config: Some(macd_override(5)),
            with_macd: true,
        })
        .await
        .unwrap()
        .into_inner()
        .analysis
        .unwrap();
    assert_eq!(to_document(&snap), to_document(&batch));
    assert_eq!(config_of(snap.config.as_ref().unwrap()).macd.fast_period, 5);
    server.stop().await.unwrap();
}

/// Duplicates get the cached answer and are not applied twice; a different payload is ABORTED;
/// a gap or 0 is `FAILED_PRECONDITION` naming the expected number; rejected bars consume nothing.
#[tokio::test]
async fn exactly_once() {
    let mut cfg = config();
    cfg.server.replay_window = 8;
    let server = TestServer::start(cfg).await;
    let mut client = server.client().await;
    let bars = sample("BTCUSD-BITSTAMP_30m.csv");
    let (mut conn, _) = Conn::open(&mut client, open_msg("BTC", "30m", false))
        .await
        .unwrap();
    let mut answers = Vec::new();
    for (i, bar) in bars[..20].iter().enumerate() {
        answers.push(conn.bar(i as u64 + 1, pb::Op::Append, bar).await);
    }
    // The same payload again: the cached answer, nothing applied.
    for seq in [20, 15, 13] {
        let r = conn.bar(seq, pb::Op::Append, &bars[seq as usize - 1]).await;
        assert_eq!(r, answers[seq as usize - 1], "{seq}");
    }
    // A different payload under an applied number.
    let r = conn.bar(20, pb::Op::Append, &bars[20]).await;
    let e = error_of(&r);
    assert_eq!(e.code, Code::Aborted as i32);
    assert_eq!(e.message, "sequence 20 was applied with a different bar");
    let r = conn.bar(20, pb::Op::ReplaceLast, &bars[19]).await;
    assert_eq!(error_of(&r).code, Code::Aborted as i32);
    // Older than the replay window (8): FAILED_PRECONDITION.
    let r = conn.bar(12, pb::Op::Append, &bars[11]).await;
    let e = error_of(&r);
    assert_eq!(e.code, Code::FailedPrecondition as i32);
    assert_eq!(e.expected_seq, 21);
    // A gap and 0.
    for seq in [22, 0] {
        let r = conn.bar(seq, pb::Op::Append, &bars[20]).await;
        let e = error_of(&r);
        assert_eq!(e.code, Code::FailedPrecondition as i32);
        assert_eq!(e.message, format!("expected sequence 21, got {seq}"));
        assert_eq!(e.expected_seq, 21);
    }
    // A bad bar: in-band INVALID_ARGUMENT with its violations; the number is not consumed.
    let mut bad = bars[20];
    bad.high = bad.low - 1.0;
    let r = conn.bar(21, pb::Op::Append, &bad).await;
    let e = error_of(&r);
    assert_eq!(e.code, Code::InvalidArgument as i32);
    assert!(
        e.message.starts_with("invalid bars: bar 20: high"),
        "{}",
        e.message
    );
    let v = &e.field_violations[0];
    assert_eq!(
        (v.field.as_str(), v.reason.as_str(), v.index),
        ("bars[20].high", "high_range", 20)
    );
    assert!(v.description.starts_with("high_range: bar 20: high"));
    let r = conn.bar(21, pb::Op::Append, &bars[19]).await;
    assert_eq!(
        error_of(&r).field_violations[0].reason,
        "time_duplicate",
        "the time rule compares with the previous bar"
    );
    let r = conn.bar(21, pb::Op::Append, &bars[20]).await;
    assert_eq!(update_of(&r).index, 20);
    // The session has each bar once: it equals the batch analysis of the 21 bars.
    let snap = client
        .get_snapshot(pb::SnapshotRequest {
            symbol: "BTC".into(),
            timeframe: "30m".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(snap.last_seq, 21);
    let batch = client
        .analyze(analyze_request(&bars[..21], None))
        .await
        .unwrap()
        .into_inner()
        .analysis
        .unwrap();
    assert_eq!(snap.analysis.unwrap(), batch);
    server.stop().await.unwrap();
}

/// `REPLACE_LAST` on an empty session, an unknown op: in-band errors; the stream stays usable.
#[tokio::test]
async fn in_band_errors_keep_the_stream() {
    let server = TestServer::default().await;
    let mut client = server.client().await;
    let (mut conn, _) = Conn::open(&mut client, open_msg("X", "1m", false))
        .await
        .unwrap();
    let bar = b(60_000, 10.0, 11.0, 9.0, 10.5);
    let r = conn.bar(1, pb::Op::ReplaceLast, &bar).await;
    let e = error_of(&r);
    assert_eq!(e.code, Code::FailedPrecondition as i32);
    assert_eq!(e.expected_seq, 1);
    let r = conn.bar(1, pb::Op::Unspecified, &bar).await;
    assert_eq!(error_of(&r).code, Code::InvalidArgument as i32);
    let r = conn.bar(1, pb::Op::Append, &bar).await;
    assert_eq!(update_of(&r).bars, 1);
    let r = conn.bar(2, pb::Op::ReplaceLast, &bar).await;
    assert!(update_of(&r).replaced);
    server.stop().await.unwrap();
}

/// A session outlives its stream: resume continues it from its last applied number.
#[tokio::test]
async fn resume_after_disconnect() {
    let server = TestServer::default().await;
    let bars = sample("AAPL_1d_head1200.csv");
    let mut answers = Vec::new();
    {
        let mut client = server.client().await;
        let (mut conn, _) = Conn::open(&mut client, open_msg("AAPL", "1d", false))
            .await
            .unwrap();
        for (i, bar) in bars[..300].iter().enumerate() {
            answers.push(conn.bar(i as u64 + 1, pb::Op::Append, bar).await);
        }
        // The connection goes away without closing the stream.
    }
    let mut client = server.client().await;
    let (mut conn, opened) = Conn::open(&mut client, open_msg("AAPL", "1d", true))
        .await
        .unwrap();
    assert_eq!(
        (
            opened.session.as_str(),
            opened.last_seq,
            opened.bars,
            opened.resumed
        ),
        ("AAPL/1d", 300, 300, true)
    );
    // The client resends what it did not see acknowledged: the same answers.
    for seq in 299..=300u64 {
        let r = conn.bar(seq, pb::Op::Append, &bars[seq as usize - 1]).await;
        assert_eq!(r, answers[seq as usize - 1]);
    }
    for (i, bar) in bars.iter().enumerate().skip(300) {
        conn.bar(i as u64 + 1, pb::Op::Append, bar).await;
    }
    let snap = client
        .get_snapshot(pb::SnapshotRequest {
            symbol: "AAPL".into(),
            timeframe: "1d".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(snap.last_seq, bars.len() as u64);
    let batch = client
        .analyze(analyze_request(&bars, None))
        .await
        .unwrap()
        .into_inner()
        .analysis
        .unwrap();
    assert_eq!(snap.analysis.unwrap(), batch);

    // A new open (resume = false) replaces the session: it starts empty.
    let (_, opened) = Conn::open(&mut client, open_msg("AAPL", "1d", false))
        .await
        .unwrap();
    assert_eq!(
        (opened.last_seq, opened.bars, opened.resumed),
        (0, 0, false)
    );
    // The old stream's session is gone: its next message ends it with ABORTED.
    let s = conn
        .request(bar_req(
            bars.len() as u64 + 1,
            pb::Op::Append,
            &b(i64::MAX / 2, 1.0, 1.0, 1.0, 1.0),
        ))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Aborted);

    // Resuming a session that does not exist; a snapshot of one.
    let s = Conn::open(&mut client, open_msg("MSFT", "1d", true))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound);
    assert!(s.message().contains("MSFT/1d"), "{}", s.message());
    let s = client
        .get_snapshot(pb::SnapshotRequest {
            symbol: "MSFT".into(),
            timeframe: "1d".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound);
    assert!(s.message().contains("MSFT/1d"));
    server.stop().await.unwrap();
}

/// The first message must be a valid open; a second open ends the stream.
#[tokio::test]
async fn bad_opens() {
    let server = TestServer::default().await;
    let mut client = server.client().await;
    let bar = b(0, 1.0, 2.0, 0.5, 1.5);
    let s = Conn::first(&mut client, bar_req(1, pb::Op::Append, &bar))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    let s = Conn::first(&mut client, pb::StreamRequest { kind: None })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);

    let s = Conn::first(&mut client, open_msg("BTC USD", "1m", false))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    let v = violations(&s);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].0, "open.symbol");
    let s = Conn::first(&mut client, open_msg("", "1y", false))
        .await
        .unwrap_err();
    let fields: Vec<String> = violations(&s).into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["open.symbol", "open.timeframe"]);
    for tf in ["0m", "10000m", "m", "15", "1.5h"] {
        let s = Conn::first(&mut client, open_msg("BTC", tf, false))
            .await
            .unwrap_err();
        assert_eq!(violations(&s)[0].0, "open.timeframe", "{tf}");
    }
    let long = "A".repeat(65);
    let s = Conn::first(&mut client, open_msg(&long, "1m", false))
        .await
        .unwrap_err();
    assert_eq!(violations(&s)[0].0, "open.symbol");
    // A bad configuration in the open.
    let mut open = open_msg("BTC", "1m", false);
    if let Some(pb::stream_request::Kind::Open(o)) = &mut open.kind {
        o.config = Some(macd_override(0));
    }
    let s = Conn::first(&mut client, open).await.unwrap_err();
    assert_eq!(violations(&s)[0].0, "config.macd.fast_period");
    // Snapshot names are checked too.
    let s = client
        .get_snapshot(pb::SnapshotRequest {
            symbol: "BTC".into(),
            timeframe: "1x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert_eq!(violations(&s)[0].0, "timeframe");

    // A second open.
    let (mut conn, _) = Conn::open(&mut client, open_msg("BTC", "1m", false))
        .await
        .unwrap();
    let s = conn.request(open_msg("BTC", "1m", true)).await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    // Nothing was created by the bad opens.
    let info = client
        .get_info(pb::InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.sessions, 1);
    server.stop().await.unwrap();
}

/// Requests over `server.max_message_bytes`: `RESOURCE_EXHAUSTED` with the documented message; the
/// transport refuses more than twice that by itself.
#[tokio::test]
async fn oversized_requests() {
    let mut cfg = config();
    cfg.server.max_message_bytes = 1024;
    let server = TestServer::start(cfg).await;
    let mut client = server.client().await;
    let bars = sample("BTCUSD-BITSTAMP_30m.csv");
    // Between the limit and twice the limit.
    let req = analyze_request(&bars[..25], None);
    let n = req.encoded_len();
    assert!(n > 1024 && n <= 2048, "{n}");
    let s = client.analyze(req).await.unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted);
    assert_eq!(
        s.message(),
        format!("request of {n} bytes exceeds server.max_message_bytes (1024)")
    );
    // Beyond twice the limit.
    let s = client
        .analyze(analyze_request(&bars[..200], None))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    // Within the limit.
    let req = analyze_request(&bars[..15], None);
    assert!(req.encoded_len() <= 1024);
    client.analyze(req).await.unwrap();
    // An open message over the limit.
    let mut open = open_msg("BTC", "1m", false);
    if let Some(pb::stream_request::Kind::Open(o)) = &mut open.kind {
        o.symbol = "A".repeat(1500);
    }
    let n = open.encoded_len();
    let s = Conn::first(&mut client, open).await.unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted);
    assert_eq!(
        s.message(),
        format!("request of {n} bytes exceeds server.max_message_bytes (1024)")
    );
    // And one over twice the limit: the transport's refusal, RESOURCE_EXHAUSTED as well.
    let mut open = open_msg("BTC", "1m", false);
    if let Some(pb::stream_request::Kind::Open(o)) = &mut open.kind {
        o.symbol = "A".repeat(3000);
    }
    let s = Conn::first(&mut client, open).await.unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    // The server still answers.
    client.get_info(pb::InfoRequest {}).await.unwrap();
    server.stop().await.unwrap();
}

/// With `server.auth_token`, every call but health needs the bearer token.
#[tokio::test]
async fn bearer_token() {
    let mut cfg = config();
    cfg.server.auth_token = "s3cret-token".into();
    let server = TestServer::start(cfg).await;
    let channel = server.channel().await;
    let mut client = pb::trading_client::TradingClient::new(channel.clone());
    let with = |token: Option<&str>| {
        let mut r = Request::new(pb::InfoRequest {});
        if let Some(t) = token {
            r.metadata_mut()
                .insert("authorization", MetadataValue::try_from(t).unwrap());
        }
        r
    };
    for token in [
        None,
        Some("Bearer wrong"),
        Some("s3cret-token"),
        Some("Basic s3cret-token"),
    ] {
        let s = client.get_info(with(token)).await.unwrap_err();
        assert_eq!(s.code(), Code::Unauthenticated, "{token:?}");
        assert_eq!(s.message(), "missing or invalid bearer token");
    }
    let info = client
        .get_info(with(Some("Bearer s3cret-token")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.engine, "rust");
    let s = client
        .analyze(analyze_request(&sample("BTCUSD-BITSTAMP_30m.csv"), None))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    let s = Conn::first(&mut client, open_msg("BTC", "1m", false))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    // Every call through a client that sends the token.
    let token: MetadataValue<_> = "Bearer s3cret-token".parse().unwrap();
    let mut authed = pb::trading_client::TradingClient::with_interceptor(
        channel.clone(),
        move |mut r: Request<()>| {
            r.metadata_mut().insert("authorization", token.clone());
            Ok(r)
        },
    );
    authed.get_config(pb::GetConfigRequest {}).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut answers = authed
        .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(open_msg("BTC", "1m", false)).await.unwrap();
    assert!(answers.message().await.unwrap().is_some());
    // Health needs no token.
    let mut health = HealthClient::new(channel);
    let r = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status, ServingStatus::Serving as i32);
    server.stop().await.unwrap();
}

/// Health: "" and trading.v1.Trading are SERVING; Check of an unknown service is `NOT_FOUND`;
/// Watch of an unknown service sends `SERVICE_UNKNOWN` and stays open; a shutdown sends
/// `NOT_SERVING` to watchers.
#[tokio::test]
async fn health_check_and_watch() {
    let mut server = TestServer::default().await;
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", "trading.v1.Trading"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let s = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound);

    let watch = |service: &str| {
        let mut h = health.clone();
        let service = service.to_string();
        async move {
            h.watch(HealthCheckRequest { service })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let mut known = watch("trading.v1.Trading").await;
    let mut server_wide = watch("").await;
    let mut unknown = watch("no.such.Service").await;
    let first = |r: Option<Result<tonic_health::pb::HealthCheckResponse, tonic::Status>>| {
        r.expect("an answer").expect("not an error").status
    };
    assert_eq!(first(known.next().await), ServingStatus::Serving as i32);
    assert_eq!(
        first(server_wide.next().await),
        ServingStatus::Serving as i32
    );
    assert_eq!(
        first(unknown.next().await),
        ServingStatus::ServiceUnknown as i32
    );
    // The unknown service's watch stays open: nothing more comes while the server runs.
    let more = tokio::time::timeout(std::time::Duration::from_millis(200), unknown.next()).await;
    assert!(
        more.is_err(),
        "the stream stays open without answers: {more:?}"
    );

    server.begin_stop();
    assert_eq!(first(known.next().await), ServingStatus::NotServing as i32);
    assert_eq!(
        first(server_wide.next().await),
        ServingStatus::NotServing as i32
    );
    // Then the watches end; the unknown service got nothing more.
    assert!(known.next().await.is_none());
    assert!(unknown.next().await.is_none());
    server.stop().await.unwrap();
}

/// `UpdateConfig` changes what new sessions and Analyze use; running (and resumed) sessions keep
/// the configuration they were opened with. `GetInfo` reports the configuration in force.
#[tokio::test]
async fn update_config_leaves_running_sessions_alone() {
    let server = TestServer::default().await;
    let mut client = server.client().await;
    let bars = sample("BTCUSD-BITSTAMP_30m.csv");
    let (mut conn, _) = Conn::open(&mut client, open_msg("BTC", "30m", false))
        .await
        .unwrap();
    for (i, bar) in bars[..1000].iter().enumerate() {
        conn.bar(i as u64 + 1, pb::Op::Append, bar).await;
    }
    let update = pb::EngineConfig {
        pen: Some(pb::PenConfig {
            definition: Some("traditional".into()),
            strict_validation: None,
        }),
        macd: Some(pb::MacdConfig {
            fast_period: Some(5),
            slow_period: Some(13),
            ..Default::default()
        }),
        ..Default::default()
    };
    let r = client
        .update_config(pb::UpdateConfigRequest {
            config: Some(update.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.engine, "rust");
    let mut new_cfg = EngineConfig::default();
    new_cfg.pen.definition = chan_core::config::PenDefinition::Traditional;
    new_cfg.macd.fast_period = 5;
    new_cfg.macd.slow_period = 13;
    assert_eq!(config_of(r.config.as_ref().unwrap()), new_cfg);
    let got = client
        .get_config(pb::GetConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(config_of(got.config.as_ref().unwrap()), new_cfg);
    let info = client
        .get_info(pb::InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(config_of(info.config.as_ref().unwrap()), new_cfg);
    assert_eq!(
        (
            info.engine.as_str(),
            info.version.as_str(),
            info.protocol.as_str(),
            info.sessions
        ),
        ("rust", env!("CARGO_PKG_VERSION"), "trading.v1", 1)
    );

    // The running session goes on with the defaults.
    for (i, bar) in bars.iter().enumerate().skip(1000) {
        conn.bar(i as u64 + 1, pb::Op::Append, bar).await;
    }
    let snap = client
        .get_snapshot(pb::SnapshotRequest {
            symbol: "BTC".into(),
            timeframe: "30m".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .analysis
        .unwrap();
    let expected = analyze(&bars, &EngineConfig::default(), false).unwrap();
    assert_eq!(to_document(&snap), expected.document());
    let (_, opened) = Conn::open(&mut client, open_msg("BTC", "30m", true))
        .await
        .unwrap();
    assert_eq!(
        config_of(opened.config.as_ref().unwrap()),
        EngineConfig::default()
    );
    // Analyze and new sessions start from the new configuration.
    let a = client
        .analyze(analyze_request(&bars, None))
        .await
        .unwrap()
        .into_inner()
        .analysis
        .unwrap();
    assert_eq!(
        to_document(&a),
        analyze(&bars, &new_cfg, false).unwrap().document()
    );
    let (_, opened) = Conn::open(&mut client, open_msg("ETH", "30m", false))
        .await
        .unwrap();
    assert_eq!(config_of(opened.config.as_ref().unwrap()), new_cfg);
    // Overrides in a request apply on top of the configuration in force.
    let a = client
        .analyze(analyze_request(&bars, Some(macd_override(4))))
        .await
        .unwrap()
        .into_inner()
        .analysis
        .unwrap();
    let mut c = new_cfg;
    c.macd.fast_period = 4;
    assert_eq!(config_of(a.config.as_ref().unwrap()), c);
    server.stop().await.unwrap();
}

/// Two servers never share a port.
#[tokio::test]
async fn a_port_in_use_is_refused() {
    let server = TestServer::default().await;
    let mut cfg = FileConfig::default();
    cfg.server.host = "127.0.0.1".into();
    let e = trading_server::EngineServer::bind(cfg, Some(server.addr.port()))
        .await
        .unwrap_err();
    match &e {
        trading_server::ServerError::Bind { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse, "{e}");
        }
        other => panic!("not a bind error: {other}"),
    }
    server.stop().await.unwrap();
}

/// TLS settings given in part are refused before anything is bound.
#[tokio::test]
async fn partial_tls_settings_are_refused() {
    let mut cfg = FileConfig::default();
    cfg.server.tls_cert_file = "server.pem".into();
    let e = trading_server::EngineServer::bind(cfg, Some(0))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("server.tls_key_file"), "{e}");
    let mut cfg = FileConfig::default();
    cfg.server.tls_client_ca_file = "ca.pem".into();
    let e = trading_server::EngineServer::bind(cfg, Some(0))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("server.tls_client_ca_file"), "{e}");
    let mut cfg = FileConfig::default();
    cfg.server.tls_cert_file = "no-such-file.pem".into();
    cfg.server.tls_key_file = "no-such-key.pem".into();
    let e = trading_server::EngineServer::bind(cfg, Some(0))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no-such-file.pem"), "{e}");
}
