//! Messages to and from `chan-core` types. Answers are the items `chan_core::document` renders
//! (what is final, confirmed, where a point lies is decided there only), converted field by
//! field (`docs/CHAN_THEORY.md` §12.6, §12.7); MACD and repairs come from the engine as they
//! are.

use chan_core::analysis::Degree;
use chan_core::config::{MacdSeed, PenDefinition, Strength};
use chan_core::document::{
    self, FractalDoc, Items, PenDoc, PivotDoc, Point, SegmentDoc, SignalDoc, Splice, TailDoc,
};
use chan_core::fractal::FractalKind;
use chan_core::signal::{Edge, Side};
use chan_core::{Bar, ChanError, Direction, Engine, EngineConfig, Session, Tail, Update};
use std::fmt::Write;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::pb;

// ---- Requests -----------------------------------------------------------------------------------

/// Columns of different lengths: the columns that differ from `time`'s length.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnLengths {
    /// `(column, its length)` for every column whose length differs from `time`'s.
    pub mismatched: Vec<(&'static str, usize)>,
    /// The length of `time`.
    pub time: usize,
}

/// The bars of a columnar message; a missing message is an empty series.
pub fn bars(b: Option<&pb::Bars>) -> Result<Vec<Bar>, ColumnLengths> {
    let Some(b) = b else {
        return Ok(Vec::new());
    };
    let n = b.time.len();
    let mismatched: Vec<(&'static str, usize)> = [
        ("open", b.open.len()),
        ("high", b.high.len()),
        ("low", b.low.len()),
        ("close", b.close.len()),
        ("volume", b.volume.len()),
    ]
    .into_iter()
    .filter(|&(_, len)| len != n)
    .collect();
    if !mismatched.is_empty() {
        return Err(ColumnLengths {
            mismatched,
            time: n,
        });
    }
    Ok((0..n)
        .map(|i| {
            Bar::new(
                b.time[i],
                b.open[i],
                b.high[i],
                b.low[i],
                b.close[i],
                b.volume[i],
            )
        })
        .collect())
}

/// One bar of a stream message.
pub fn bar(b: &pb::Bar) -> Bar {
    Bar::new(b.time, b.open, b.high, b.low, b.close, b.volume)
}

fn config_error(key: &str, message: impl Into<String>) -> ChanError {
    ChanError::Config {
        key: key.into(),
        message: message.into(),
    }
}

/// Reads an enumerated key by its configuration name (`"sma"`), as the YAML file spells it.
fn parse_name<T: DeserializeOwned>(key: &str, s: &str) -> Result<T, ChanError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|e| {
        // serde echoes the value as it came: show it by the project's rule instead.
        let e = e.to_string();
        let expected = e.split_once(", expected ").map_or("", |(_, x)| x);
        config_error(
            key,
            format!(
                "unknown variant `{}`, expected {expected}",
                chan_core::display::shown(s)
            ),
        )
    })
}

/// The configuration name of an enumerated value (`"first_close"`).
fn name_of<T: Serialize>(x: &T) -> String {
    match serde_json::to_value(x) {
        Ok(serde_json::Value::String(s)) => s,
        other => unreachable!("an enumerated configuration value: {other:?}"),
    }
}

/// Applies the overrides of a request to `base`, key by key, then checks the whole (spec §11):
/// a field that is not set keeps `base`'s value; an error names the key (`macd.seed`).
pub fn apply_overrides(
    base: &EngineConfig,
    o: Option<&pb::EngineConfig>,
) -> Result<EngineConfig, ChanError> {
    let mut c = *base;
    let Some(o) = o else {
        return Ok(c);
    };
    if let Some(v) = &o.validation {
        if let Some(x) = v.allow_non_positive_prices {
            c.validation.allow_non_positive_prices = x;
        }
        if let Some(x) = v.repair {
            c.validation.repair = x;
        }
    }
    if let Some(m) = &o.macd {
        if let Some(x) = m.fast_period {
            c.macd.fast_period = x;
        }
        if let Some(x) = m.slow_period {
            c.macd.slow_period = x;
        }
        if let Some(x) = m.signal_period {
            c.macd.signal_period = x;
        }
        if let Some(x) = m.histogram_scale {
            c.macd.histogram_scale = x;
        }
        if let Some(x) = &m.seed {
            c.macd.seed = parse_name::<MacdSeed>("macd.seed", x)?;
        }
    }
    if let Some(p) = &o.pen {
        if let Some(x) = &p.definition {
            c.pen.definition = parse_name::<PenDefinition>("pen.definition", x)?;
        }
        if let Some(x) = p.strict_validation {
            c.pen.strict_validation = x;
        }
    }
    if let Some(s) = &o.segment {
        if let Some(x) = s.feature_sequence_strict {
            c.segment.feature_sequence_strict = x;
        }
        if let Some(x) = s.handle_inclusion {
            c.segment.handle_inclusion = x;
        }
    }
    if let Some(s) = &o.signal {
        if let Some(x) = &s.strength {
            c.signal.strength = parse_name::<Strength>("signal.strength", x)?;
        }
        if let Some(x) = s.divergence_rate {
            c.signal.divergence_rate = x;
        }
        if let Some(x) = s.min_pivots {
            c.signal.min_pivots = x;
        }
    }
    if let Some(x) = o.structure.as_ref().and_then(|s| s.degrees) {
        c.structure.degrees = x;
    }
    c.validate()?;
    Ok(c)
}

// ---- Answers ------------------------------------------------------------------------------------

/// The configuration in force, every field set.
pub fn config(c: &EngineConfig) -> pb::EngineConfig {
    pb::EngineConfig {
        validation: Some(pb::ValidationConfig {
            allow_non_positive_prices: Some(c.validation.allow_non_positive_prices),
            repair: Some(c.validation.repair),
        }),
        macd: Some(pb::MacdConfig {
            fast_period: Some(c.macd.fast_period),
            slow_period: Some(c.macd.slow_period),
            signal_period: Some(c.macd.signal_period),
            histogram_scale: Some(c.macd.histogram_scale),
            seed: Some(name_of(&c.macd.seed)),
        }),
        pen: Some(pb::PenConfig {
            definition: Some(name_of(&c.pen.definition)),
            strict_validation: Some(c.pen.strict_validation),
        }),
        segment: Some(pb::SegmentConfig {
            feature_sequence_strict: Some(c.segment.feature_sequence_strict),
            handle_inclusion: Some(c.segment.handle_inclusion),
        }),
        signal: Some(pb::SignalConfig {
            strength: Some(name_of(&c.signal.strength)),
            divergence_rate: Some(c.signal.divergence_rate),
            min_pivots: Some(c.signal.min_pivots),
        }),
        structure: Some(pb::StructureConfig {
            degrees: Some(c.structure.degrees),
        }),
    }
}

/// The configuration's digest (`config_version`, `docs/GRPC.md`): the first 8 bytes of the
/// SHA-256 of the message's protobuf encoding (prost writes fields in number order: the
/// encoding is deterministic), as 16 lowercase hex digits.
pub fn config_version(c: &pb::EngineConfig) -> String {
    use prost::Message;
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(c.encode_to_vec());
    digest[..8]
        .iter()
        .fold(String::with_capacity(16), |mut s, b| {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn direction(d: Direction) -> i32 {
    match d {
        Direction::Up => pb::Direction::Up as i32,
        Direction::Down => pb::Direction::Down as i32,
    }
}

fn point(p: &Point) -> pb::Point {
    pb::Point {
        index: p.index,
        time: p.time,
        price: p.price,
    }
}

fn fractal(f: &FractalDoc) -> pb::Fractal {
    pb::Fractal {
        kind: match f.kind {
            FractalKind::Top => pb::FractalKind::Top as i32,
            FractalKind::Bottom => pb::FractalKind::Bottom as i32,
        },
        merged_index: f.merged_index,
        point: Some(pb::Point {
            index: f.index,
            time: f.time,
            price: f.price,
        }),
    }
}

/// A pen; the forming pen (no `final` in the document) is not final.
fn pen(p: &PenDoc) -> pb::Pen {
    pb::Pen {
        direction: direction(p.direction),
        start: Some(point(&p.start)),
        end: Some(point(&p.end)),
        r#final: p.is_final == Some(true),
    }
}

fn segment(s: &SegmentDoc) -> pb::Segment {
    pb::Segment {
        direction: direction(s.direction),
        start: Some(point(&s.start)),
        end: Some(point(&s.end)),
        first_pen: s.first_pen,
        last_pen: s.last_pen,
        confirmed: s.confirmed,
        gap: s.gap,
    }
}

fn pivot(z: &PivotDoc) -> pb::Pivot {
    pb::Pivot {
        segment: z.segment,
        first_pen: z.first_pen,
        last_pen: z.last_pen,
        zd: z.zd,
        zg: z.zg,
        dd: z.dd,
        gg: z.gg,
        start: Some(point(&z.start)),
        end: Some(point(&z.end)),
        confirmed: z.confirmed,
    }
}

fn signal(s: &SignalDoc) -> pb::Signal {
    pb::Signal {
        r#type: u32::from(s.kind),
        side: match s.side {
            Side::Buy => pb::Side::Buy as i32,
            Side::Sell => pb::Side::Sell as i32,
        },
        pen: s.pen,
        point: Some(pb::Point {
            index: s.index,
            time: s.time,
            price: s.price,
        }),
        r#final: s.is_final,
        pivot: s.pivot,
        zd: s.zd,
        zg: s.zg,
        entering_strength: strength(s, s.entering_strength),
        leaving_strength: strength(s, s.leaving_strength),
        ratio: strength(s, s.ratio),
        follows: s.follows,
        edge: match s.edge {
            None => pb::PivotEdge::Unspecified as i32,
            Some(Edge::Zd) => pb::PivotEdge::Zd as i32,
            Some(Edge::Zg) => pb::PivotEdge::Zg as i32,
        },
    }
}

/// A type-1 point's strength or ratio: the document's value, NaN where it shows `null` (not a
/// finite number); absent for the other types.
fn strength(s: &SignalDoc, x: Option<f64>) -> Option<f64> {
    (s.kind == 1).then(|| x.unwrap_or(f64::NAN))
}

fn all<T, M>(items: &[T], f: impl Fn(&T) -> M) -> Vec<M> {
    items.iter().map(f).collect()
}

fn tail(t: &TailDoc) -> pb::Tail {
    pb::Tail {
        segments: all(&t.segments, segment),
        pivots: all(&t.pivots, pivot),
        signals: all(&t.signals, signal),
    }
}

/// The analysis (the document of §12.6) of an engine and its tail: the document's items
/// (`chan_core::document` decides them), the MACD and repairs as the engine holds them.
pub fn analysis(e: &Engine, t: &Tail, higher: &[Degree]) -> pb::Analysis {
    let items = Items::build(e, t);
    pb::Analysis {
        bars: e.bars() as u64,
        merged_bars: e.merged().len() as u64,
        fractals: all(&items.fractals, fractal),
        pens: all(&items.pens, pen),
        forming_pen: items.forming_pen.as_ref().map(pen),
        segments: all(&items.segments, segment),
        pivots: all(&items.pivots, pivot),
        signals: all(&items.signals, signal),
        macd: e.keeps_macd().then(|| pb::Macd {
            dif: e.dif().to_vec(),
            dea: e.dea().to_vec(),
            histogram: e.histogram().to_vec(),
        }),
        repairs: e
            .repairs()
            .iter()
            .map(|x| pb::Repair {
                index: x.index as u32,
                old_high: x.old_high,
                old_low: x.old_low,
                new_high: x.new_high,
                new_low: x.new_low,
            })
            .collect(),
        config: Some(config(e.config())),
        degrees: document::degrees(e, higher)
            .iter()
            .map(|d| pb::Degree {
                degree: d.degree,
                segments: all(&d.segments, segment),
                pivots: all(&d.pivots, pivot),
                signals: all(&d.signals, signal),
            })
            .collect(),
    }
}

// The splices of segments, pivots and points: degree 1's and every higher degree's.
fn segment_splice(s: &Splice<SegmentDoc>) -> pb::SegmentSplice {
    pb::SegmentSplice {
        from: s.from as u64,
        items: all(&s.items, segment),
    }
}

fn pivot_splice(s: &Splice<PivotDoc>) -> pb::PivotSplice {
    pb::PivotSplice {
        from: s.from as u64,
        items: all(&s.items, pivot),
    }
}

fn signal_splice(s: &Splice<SignalDoc>) -> pb::SignalSplice {
    pb::SignalSplice {
        from: s.from as u64,
        items: all(&s.items, signal),
    }
}

/// What one stream message changed (§12.7): the update document of `u`, the report of the
/// session's latest call, as a message (an absent MACD value is NaN, as in the analysis).
pub fn update(s: &Session, u: &Update) -> pb::Update {
    let d = s.update_doc(u);
    let nan = |x: Option<f64>| x.unwrap_or(f64::NAN);
    pb::Update {
        index: d.index as u64,
        replaced: d.replaced,
        repaired: d.repaired,
        bars: d.bars as u64,
        merged_bars: d.merged_bars as u64,
        macd: Some(pb::MacdPoint {
            dif: nan(d.macd.dif),
            dea: nan(d.macd.dea),
            histogram: nan(d.macd.histogram),
        }),
        fractals: Some(pb::FractalSplice {
            from: d.fractals.from as u64,
            items: all(&d.fractals.items, fractal),
        }),
        pens: Some(pb::PenSplice {
            from: d.pens.from as u64,
            items: all(&d.pens.items, pen),
        }),
        segments: Some(segment_splice(&d.segments)),
        pivots: Some(pivot_splice(&d.pivots)),
        signals: Some(signal_splice(&d.signals)),
        last_pen: d.last_pen.as_ref().map(pen),
        forming_pen: d.forming_pen.as_ref().map(pen),
        tail: d.tail.as_ref().map(tail),
        degrees: (d.degrees.iter())
            .map(|g| pb::DegreeUpdate {
                degree: g.degree,
                segments: Some(segment_splice(&g.segments)),
                pivots: Some(pivot_splice(&g.pivots)),
                signals: Some(signal_splice(&g.signals)),
                tail: g.tail.as_ref().map(tail),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_of_different_lengths_are_named() {
        let b = pb::Bars {
            time: vec![1, 2],
            open: vec![1.0, 1.0],
            high: vec![1.0],
            low: vec![1.0, 1.0],
            close: vec![1.0, 1.0, 1.0],
            volume: vec![1.0, 1.0],
        };
        let e = bars(Some(&b)).unwrap_err();
        assert_eq!(e.mismatched, vec![("high", 1), ("close", 3)]);
        assert_eq!(e.time, 2);
        assert!(bars(None).unwrap().is_empty());
    }

    #[test]
    fn overrides_apply_key_by_key_and_name_the_key() {
        let base = EngineConfig::default();
        assert_eq!(apply_overrides(&base, None).unwrap(), base);
        let o = pb::EngineConfig {
            macd: Some(pb::MacdConfig {
                fast_period: Some(5),
                seed: Some("sma".into()),
                ..Default::default()
            }),
            pen: Some(pb::PenConfig {
                definition: Some("traditional".into()),
                strict_validation: None,
            }),
            ..Default::default()
        };
        let c = apply_overrides(&base, Some(&o)).unwrap();
        assert_eq!(c.macd.fast_period, 5);
        assert_eq!(c.macd.slow_period, 26);
        assert_eq!(c.macd.seed, MacdSeed::Sma);
        assert_eq!(c.pen.definition, PenDefinition::Traditional);
        assert!(c.pen.strict_validation);
        for (o, key) in [
            (
                pb::EngineConfig {
                    macd: Some(pb::MacdConfig {
                        fast_period: Some(0),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "macd.fast_period",
            ),
            (
                pb::EngineConfig {
                    macd: Some(pb::MacdConfig {
                        histogram_scale: Some(f64::NAN),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "macd.histogram_scale",
            ),
            (
                pb::EngineConfig {
                    signal: Some(pb::SignalConfig {
                        strength: Some("volume".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "signal.strength",
            ),
        ] {
            let e = apply_overrides(&base, Some(&o)).unwrap_err();
            assert!(
                matches!(&e, ChanError::Config { key: k, .. } if k == key),
                "{e}"
            );
        }
    }

    #[test]
    fn answers_carry_every_configuration_field() {
        let c = config(&EngineConfig::default());
        let back = apply_overrides(&EngineConfig::default(), Some(&c)).unwrap();
        assert_eq!(back, EngineConfig::default());
        assert_eq!(c.macd.unwrap().seed.as_deref(), Some("first_close"));
        assert_eq!(c.pen.unwrap().definition.as_deref(), Some("new_3kline"));
        assert_eq!(c.signal.unwrap().strength.as_deref(), Some("area"));
    }
}
