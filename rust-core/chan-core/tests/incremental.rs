//! Spec §10: any sequence of appends and last-bar replacements leaves exactly the state of one
//! batch analysis of the resulting series, and the change reports rebuild that state.

use chan_core::analysis::{higher_degrees, Tail};
use chan_core::config::{MacdSeed, PenDefinition, Strength};
use chan_core::fractal::Fractal;
use chan_core::pen::Pen;
use chan_core::pivot::Pivot;
use chan_core::segment::SegmentSpan;
use chan_core::signal::Signal;
use chan_core::{analyze, Bar, BarOp, EngineConfig, Session};
use proptest::prelude::*;

mod update_client;

/// Cases per property: the default keeps `scripts/test.sh` quick; `PROPTEST_CASES=N` runs more.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One stream message: append a bar, or replace the last one.
#[derive(Debug, Clone)]
enum Op {
    Append(Bar),
    Replace(Bar),
}

/// Prices on a coarse grid so that ties, flat bars and inclusions are common.
fn bar_params() -> impl Strategy<Value = (i32, u8, u8, u8, u8, bool)> {
    (
        -3i32..=3,
        0u8..4,
        0u8..4,
        0u8..=100,
        0u8..=100,
        any::<bool>(),
    )
}

fn make_bar(time: i64, base: f64, p: (i32, u8, u8, u8, u8, bool), tick: f64) -> (Bar, f64) {
    let (step, up, down, o, c, flat) = p;
    let mid = (base + f64::from(step) * tick).max(tick * 10.0);
    if flat {
        return (Bar::new(time, mid, mid, mid, mid, 1.0), mid);
    }
    let high = mid + f64::from(up) * tick;
    let low = (mid - f64::from(down) * tick).max(tick);
    let at = |q: u8| low + (high - low) * (f64::from(q) / 100.0);
    let (open, close) = (at(o), at(c));
    (Bar::new(time, open, high, low, close, 10.0), close)
}

fn ops() -> impl Strategy<Value = (Vec<Op>, f64)> {
    let tick = prop_oneof![Just(0.0001), Just(0.01), Just(1.0), Just(250.0)];
    (
        prop::collection::vec((bar_params(), 0u8..10), 1..1200),
        tick,
    )
        .prop_map(|(steps, tick)| {
            let mut out = Vec::new();
            let mut time = 1_600_000_000_000i64;
            let mut base = 100.0 * tick * 10.0;
            let mut have = false;
            for (p, kind) in steps {
                // About one message in four replaces the last bar (same or later time).
                if have && kind < 3 {
                    let (b, _) = make_bar(time + i64::from(kind), base, p, tick);
                    out.push(Op::Replace(b));
                } else {
                    time += 60_000;
                    let (b, close) = make_bar(time, base, p, tick);
                    base = close;
                    out.push(Op::Append(b));
                    have = true;
                }
            }
            (out, tick)
        })
}

fn configs() -> impl Strategy<Value = EngineConfig> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0u8..4,
        (1u32..6, 6u32..15, 1u32..6),
        0u32..3,
        1u32..5,
    )
        .prop_map(
            |(trad, strict, fs, incl, sma, strength, (f, s, g), minp, degrees)| {
                let mut c = EngineConfig::default();
                c.pen.definition = if trad {
                    PenDefinition::Traditional
                } else {
                    PenDefinition::New3Kline
                };
                c.pen.strict_validation = strict;
                c.segment.feature_sequence_strict = fs;
                c.segment.handle_inclusion = incl;
                c.macd.seed = if sma {
                    MacdSeed::Sma
                } else {
                    MacdSeed::FirstClose
                };
                (c.macd.fast_period, c.macd.slow_period, c.macd.signal_period) = (f, s, g);
                c.signal.strength = [
                    Strength::Area,
                    Strength::Peak,
                    Strength::Slope,
                    Strength::Amplitude,
                ][strength as usize];
                c.signal.min_pivots = minp;
                c.structure.degrees = degrees;
                c
            },
        )
}

/// What a client keeps from the change reports.
#[derive(Default)]
struct Mirror {
    fractals: Vec<Fractal>,
    pens: Vec<Pen>,
    segments: Vec<SegmentSpan>,
    pivots: Vec<Pivot>,
    signals: Vec<Signal>,
    /// Per higher degree.
    higher: Vec<DegreeMirror>,
}

/// A higher degree as a client keeps it: settled segments, pivots and points, and the tail.
type DegreeMirror = (Vec<SegmentSpan>, Vec<Pivot>, Vec<Signal>, Tail);

fn splice<T: Clone>(v: &mut Vec<T>, r: std::ops::Range<usize>, src: &[T]) {
    v.truncate(r.start);
    v.extend_from_slice(&src[r]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1000), ..ProptestConfig::default() })]

    #[test]
    fn incremental_equals_batch((ops, _tick) in ops(), cfg in configs(), with_macd in any::<bool>()) {
        let mut s = Session::new(cfg, with_macd).unwrap();
        let mut series: Vec<Bar> = Vec::new();
        let mut m = Mirror::default();
        let mut tail = s.tail().clone();
        for op in &ops {
            let u = match op {
                Op::Append(b) => { series.push(*b); s.append(*b).unwrap() }
                Op::Replace(b) => { *series.last_mut().unwrap() = *b; s.replace_last(*b).unwrap() }
            };
            let e = s.engine();
            prop_assert_eq!(u.index, series.len() - 1);
            splice(&mut m.fractals, u.fractals.clone(), &e.fractals().to_vec());
            let final_pens = &e.pens()[..e.pens().len().saturating_sub(1)];
            splice(&mut m.pens, u.pens.clone(), final_pens);
            splice(&mut m.segments, u.segments.clone(), e.confirmed_segments());
            splice(&mut m.pivots, u.pivots.clone(), e.confirmed_pivots());
            splice(&mut m.signals, u.signals.clone(), e.final_signals());
            if u.tail_changed {
                tail = s.tail().clone();
            }
            prop_assert_eq!(&tail, s.tail(), "tail reported unchanged but differs");
            if m.higher.is_empty() {
                m.higher = s.degree_lists().map(|_| Default::default()).collect();
            }
            prop_assert_eq!(s.degree_changes().count(), m.higher.len());
            // A degree reads only what degree 1 settles and shows: when neither changed, no
            // degree's tail did, and none says so (a flag left set would resend it every bar).
            if !u.tail_changed && u.segments.is_empty() {
                prop_assert!(s.degree_changes().all(|c| !c.tail_changed), "a quiet bar flags a degree");
            }
            for ((l, c), h) in s.degree_lists().zip(s.degree_changes()).zip(&mut m.higher) {
                prop_assert_eq!(l.degree, c.degree);
                splice(&mut h.0, c.segments.clone(), l.segments);
                splice(&mut h.1, c.pivots.clone(), l.pivots);
                splice(&mut h.2, c.signals.clone(), l.signals);
                if c.tail_changed {
                    h.3 = l.tail.clone();
                }
                prop_assert_eq!(&h.3, l.tail, "degree {} tail reported unchanged but differs", l.degree);
            }
            // The session's tail reuses parts of the one before: it must equal a fresh one.
            prop_assert_eq!(s.tail(), &e.tail(), "kept tail differs from a fresh one");
            // So must every higher degree, kept bar by bar from what the degree below changed.
            let fresh = higher_degrees(e, s.tail());
            prop_assert_eq!(s.higher(), fresh, "kept higher degrees differ from fresh ones");
        }
        let batch = analyze(&series, &cfg, with_macd).unwrap();
        prop_assert_eq!(s.document(), batch.document());
        prop_assert_eq!(m.higher.len() as u32, cfg.structure.degrees - 1);
        for (l, h) in s.degree_lists().zip(&m.higher) {
            prop_assert_eq!((l.segments, l.pivots, l.signals), (&h.0[..], &h.1[..], &h.2[..]));
        }
        let e = &batch.engine;
        prop_assert_eq!(&m.fractals[..], &e.fractals().to_vec()[..]);
        prop_assert_eq!(&m.pens[..], &e.pens()[..e.pens().len().saturating_sub(1)]);
        prop_assert_eq!(&m.segments[..], e.confirmed_segments());
        prop_assert_eq!(&m.pivots[..], e.confirmed_pivots());
        prop_assert_eq!(&m.signals[..], e.final_signals());
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(100), ..ProptestConfig::default() })]

    /// Update documents (JSON), applied by a client that knows only the JSON, rebuild the
    /// session's document after every call.
    #[test]
    fn update_documents_rebuild_the_document((ops, _tick) in ops(), cfg in configs(), with_macd in any::<bool>()) {
        let mut s = Session::new(cfg, with_macd).unwrap();
        let mut client = update_client::Client::new(with_macd);
        for (i, op) in ops.iter().enumerate() {
            let u = match op {
                Op::Append(b) => s.append(*b).unwrap(),
                Op::Replace(b) => s.replace_last(*b).unwrap(),
            };
            let full = i % 64 == 0 || i + 1 == ops.len();
            if let Err(d) = update_client::step(&mut client, &s, &u, full) {
                prop_assert!(false, "{}", d);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]

    /// A rejected bar changes nothing, and the session stays usable.
    #[test]
    fn rejected_bars_change_nothing((ops, _tick) in ops(), cfg in configs()) {
        let mut s = Session::new(cfg, true).unwrap();
        for op in &ops {
            let before = s.document();
            let (mut bad, replace) = match op { Op::Append(b) => (*b, false), Op::Replace(b) => (*b, true) };
            bad.high = bad.low - 1.0;
            let err = if replace { s.replace_last(bad) } else { s.append(bad) };
            prop_assert!(err.is_err());
            prop_assert_eq!(before, s.document());
            match op { Op::Append(b) => s.append(*b).unwrap(), Op::Replace(b) => s.replace_last(*b).unwrap() };
        }
    }
}

/// The document as JSON text: equal texts are equal bit for bit (the sign of zero included).
fn text(s: &Session) -> String {
    serde_json::to_string(&s.document()).unwrap()
}

fn bar_op(op: &Op) -> BarOp {
    match *op {
        Op::Append(b) => BarOp::Append(b),
        Op::Replace(b) => BarOp::ReplaceLast(b),
    }
}

fn stream(s: &mut Session, op: &Op) -> chan_core::Update {
    match op {
        Op::Append(b) => s.append(*b).unwrap(),
        Op::Replace(b) => s.replace_last(*b).unwrap(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(300), ..ProptestConfig::default() })]

    /// Batches of messages (`apply_batch`) leave exactly the state of the same messages streamed
    /// one by one, with streamed messages and batches interleaved: the document bit for bit,
    /// the tail, and then every change report of the messages streamed after a batch.
    #[test]
    fn batches_equal_streaming(
        (ops, _tick) in ops(),
        cfg in configs(),
        with_macd in any::<bool>(),
        cuts in prop::collection::vec((0usize..400, any::<bool>()), 1..8),
    ) {
        let mut one = Session::new(cfg, with_macd).unwrap();
        let mut many = Session::new(cfg, with_macd).unwrap();
        let mut at = 0usize;
        for (len, batched) in cuts.iter().copied().chain([(usize::MAX, true)]) {
            let end = at.saturating_add(len).min(ops.len());
            let chunk = &ops[at..end];
            if batched {
                for op in chunk {
                    stream(&mut one, op);
                }
                let batch: Vec<BarOp> = chunk.iter().map(bar_op).collect();
                many.apply_batch(&batch).unwrap();
            } else {
                // Streamed after a batch: the same change reports as the session that never
                // took one.
                for op in chunk {
                    // Debug text: NaN equals NaN there, and -0.0 differs from 0.0.
                    let (a, b) = (stream(&mut one, op), stream(&mut many, op));
                    prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
                }
            }
            prop_assert_eq!(one.bars(), many.bars());
            prop_assert_eq!(text(&one), text(&many));
            prop_assert_eq!(one.tail(), many.tail());
            prop_assert_eq!(many.tail(), &many.engine().tail());
            at = end;
            if at == ops.len() {
                break;
            }
        }
        // A replacement right after a batch undoes the batch's last bar as streaming does.
        if let Some(last) = ops.iter().rev().find_map(|op| match op { Op::Append(b) => Some(*b), Op::Replace(_) => None }) {
            let mut b = last;
            b.time = one.engine().times().to_vec().last().copied().unwrap();
            b.high += 1.0;
            b.close = b.high;
            let u1 = one.replace_last(b).unwrap();
            let u2 = many.replace_last(b).unwrap();
            prop_assert_eq!(format!("{u1:?}"), format!("{u2:?}"));
            prop_assert_eq!(text(&one), text(&many));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]

    /// A batch with one bad message is refused whole, naming the message; the session stays
    /// as it was and usable.
    #[test]
    fn a_refused_batch_changes_nothing((ops, _tick) in ops(), cfg in configs(), pick in any::<prop::sample::Index>()) {
        let half = ops.len() / 2;
        let mut s = Session::new(cfg, true).unwrap();
        s.apply_batch(&ops[..half].iter().map(bar_op).collect::<Vec<_>>()).unwrap();
        let before = text(&s);
        let mut rest: Vec<BarOp> = ops[half..].iter().map(bar_op).collect();
        let k = pick.index(rest.len());
        match &mut rest[k] {
            BarOp::Append(b) | BarOp::ReplaceLast(b) => b.high = b.low - 1.0,
        }
        let e = s.apply_batch(&rest).unwrap_err();
        prop_assert_eq!(e.at, k);
        prop_assert!(e.error.to_string().contains("high"), "{}", e.error);
        prop_assert_eq!(&before, &text(&s));
        rest[k] = bar_op(&ops[half + k]);
        s.apply_batch(&rest).unwrap();
        let series_doc = {
            let mut t = Session::new(cfg, true).unwrap();
            for op in &ops { stream(&mut t, op); }
            text(&t)
        };
        prop_assert_eq!(series_doc, text(&s));
    }
}

#[test]
fn a_batch_replacing_on_an_empty_session_is_refused() {
    let mut s = Session::new(EngineConfig::default(), false).unwrap();
    let b = Bar::new(0, 1.0, 1.0, 1.0, 1.0, 1.0);
    let e = s
        .apply_batch(&[BarOp::ReplaceLast(b), BarOp::Append(b)])
        .unwrap_err();
    assert_eq!(e.at, 0);
    assert!(e.error.to_string().contains("no bar to replace"));
    // A duplicate time is judged against the batch's own earlier bars.
    let e = s
        .apply_batch(&[BarOp::Append(b), BarOp::Append(b)])
        .unwrap_err();
    assert_eq!(e.at, 1);
    assert_eq!(e.error.violations()[0].rule, "time_duplicate");
    assert_eq!(s.bars(), 0);
    s.apply_batch(&[BarOp::Append(b), BarOp::ReplaceLast(b)])
        .unwrap();
    assert_eq!(s.bars(), 1);
}

#[test]
fn replace_on_an_empty_session_is_an_error() {
    let mut s = Session::new(EngineConfig::default(), false).unwrap();
    let e = s
        .replace_last(Bar::new(0, 1.0, 1.0, 1.0, 1.0, 1.0))
        .unwrap_err();
    assert!(e.to_string().contains("no bar to replace"));
}

/// The generator is only useful if its series reach segments, pivots and points.
#[test]
fn generated_series_reach_the_whole_structure() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut r = TestRunner::deterministic();
    let (mut confirmed, mut pivots, mut signals, mut higher) = (0, 0, 0, 0);
    for _ in 0..100 {
        let (ops, _) = ops().new_tree(&mut r).unwrap().current();
        let cfg = configs().new_tree(&mut r).unwrap().current();
        let mut s = Session::new(cfg, false).unwrap();
        for op in ops {
            match op {
                Op::Append(b) => s.append(b).unwrap(),
                Op::Replace(b) => s.replace_last(b).unwrap(),
            };
        }
        let d = s.document();
        confirmed += u32::from(d.segments.iter().any(|x| x.confirmed));
        pivots += u32::from(!d.pivots.is_empty());
        signals += u32::from(!d.signals.is_empty());
        higher += u32::from(d.degrees.iter().any(|g| g.segments.len() >= 2));
    }
    assert!(
        confirmed >= 40 && pivots >= 40 && signals >= 40 && higher >= 20,
        "{confirmed} {pivots} {signals} {higher}"
    );
}
