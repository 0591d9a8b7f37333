//! Messages to and from `chan-core` types. Answers are built straight from the engine's state
//! (times as epoch milliseconds from the engine's own times), mirroring the document of
//! `chan_core::document` field for field (`docs/CHAN_THEORY.md` §12.6, §12.7).

use chan_core::config::{MacdSeed, PenDefinition, Strength};
use chan_core::fractal::{Fractal, FractalKind};
use chan_core::macd::MacdPoint;
use chan_core::pen::Pen;
use chan_core::pivot::Pivot;
use chan_core::segment::SegmentSpan;
use chan_core::signal::{Side, Signal};
use chan_core::{Bar, ChanError, Column, Direction, Engine, EngineConfig, Session, Tail, Update};
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

/// Renders engine items as messages: the counterpart of `chan_core::document`'s renderer.
#[derive(Clone, Copy)]
struct Render<'a> {
    engine: &'a Engine,
    times: &'a Column<i64>,
    pens: &'a [Pen],
}

impl<'a> Render<'a> {
    fn new(engine: &'a Engine) -> Self {
        Self {
            engine,
            times: engine.times(),
            pens: engine.pens(),
        }
    }

    fn point(&self, f: &Fractal) -> pb::Point {
        pb::Point {
            index: f.index,
            time: self.times[f.index as usize],
            price: f.price,
        }
    }

    fn fractal(&self, f: &Fractal) -> pb::Fractal {
        pb::Fractal {
            kind: match f.kind {
                FractalKind::Top => pb::FractalKind::Top as i32,
                FractalKind::Bottom => pb::FractalKind::Bottom as i32,
            },
            merged_index: f.merged,
            point: Some(self.point(f)),
        }
    }

    fn pen(&self, p: &Pen, is_final: bool) -> pb::Pen {
        pb::Pen {
            direction: direction(p.dir),
            start: Some(self.point(&p.start)),
            end: Some(self.point(&p.end)),
            r#final: is_final,
        }
    }

    fn segment(&self, s: &SegmentSpan, confirmed: bool) -> pb::Segment {
        pb::Segment {
            direction: direction(s.dir),
            start: Some(self.point(&self.pens[s.first_pen as usize].start)),
            end: Some(self.point(&self.pens[s.last_pen as usize].end)),
            first_pen: s.first_pen,
            last_pen: s.last_pen,
            confirmed,
            gap: s.gap,
        }
    }

    /// A segment of the engine's confirmed list: settled when it has at least 3 pens (as
    /// `chan_core::document` renders it).
    fn final_segment(&self, s: &SegmentSpan) -> pb::Segment {
        self.segment(s, s.len() >= 3)
    }

    fn pivot(&self, z: &Pivot, confirmed: bool) -> pb::Pivot {
        pb::Pivot {
            segment: z.segment,
            first_pen: z.first_pen,
            last_pen: z.last_pen,
            zd: z.zd,
            zg: z.zg,
            dd: z.dd,
            gg: z.gg,
            start: Some(self.point(&self.pens[z.first_pen as usize].start)),
            end: Some(self.point(&self.pens[z.last_pen as usize].end)),
            confirmed,
        }
    }

    /// A pivot of the engine's list: confirmed when its segment is.
    fn final_pivot(&self, z: &Pivot) -> pb::Pivot {
        let confirmed = self.engine.confirmed_segments()[z.segment as usize].len() >= 3;
        self.pivot(z, confirmed)
    }

    fn signal(&self, s: Signal) -> pb::Signal {
        pb::Signal {
            r#type: u32::from(s.kind),
            side: match s.side {
                Side::Buy => pb::Side::Buy as i32,
                Side::Sell => pb::Side::Sell as i32,
            },
            pen: s.pen,
            point: Some(self.point(&self.pens[s.pen as usize].end)),
            r#final: s.is_final,
        }
    }

    fn tail(&self, tail: &Tail) -> pb::Tail {
        pb::Tail {
            segments: tail
                .segments
                .iter()
                .map(|s| self.segment(s, false))
                .collect(),
            pivots: tail.pivots.iter().map(|z| self.pivot(z, false)).collect(),
            signals: tail.signals.iter().map(|s| self.signal(*s)).collect(),
        }
    }
}

/// The analysis (the document of §12.6) of an engine and its tail.
pub fn analysis(e: &Engine, tail: &Tail) -> pb::Analysis {
    let r = Render::new(e);
    let last = r.pens.len().saturating_sub(1);
    let t = r.tail(tail);
    pb::Analysis {
        bars: e.bars() as u64,
        merged_bars: e.merged().len() as u64,
        fractals: e.fractals().iter().map(|f| r.fractal(f)).collect(),
        pens: r
            .pens
            .iter()
            .enumerate()
            .map(|(i, p)| r.pen(p, i < last))
            .collect(),
        forming_pen: e.forming_pen().map(|p| r.pen(&p, false)),
        segments: e
            .confirmed_segments()
            .iter()
            .map(|s| r.final_segment(s))
            .chain(t.segments)
            .collect(),
        pivots: e
            .confirmed_pivots()
            .iter()
            .map(|z| r.final_pivot(z))
            .chain(t.pivots)
            .collect(),
        signals: e
            .final_signals()
            .iter()
            .map(|s| r.signal(*s))
            .chain(t.signals)
            .collect(),
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
    }
}

fn macd_point(m: MacdPoint) -> pb::MacdPoint {
    pb::MacdPoint {
        dif: m.dif,
        dea: m.dea,
        histogram: m.histogram,
    }
}

/// What one stream message changed (§12.7): `u` is the report of the session's latest call.
pub fn update(s: &Session, u: &Update) -> pb::Update {
    let e = s.engine();
    let r = Render::new(e);
    let finals = r.pens.len().saturating_sub(1);
    pb::Update {
        index: u.index as u64,
        replaced: u.replaced,
        repaired: u.repaired,
        bars: e.bars() as u64,
        merged_bars: e.merged().len() as u64,
        macd: Some(macd_point(u.macd)),
        fractals: Some(pb::FractalSplice {
            from: u.fractals.start as u64,
            items: e
                .fractals()
                .range(u.fractals.clone())
                .map(|f| r.fractal(f))
                .collect(),
        }),
        pens: Some(pb::PenSplice {
            from: u.pens.start as u64,
            items: r.pens[..finals][u.pens.clone()]
                .iter()
                .map(|p| r.pen(p, true))
                .collect(),
        }),
        segments: Some(pb::SegmentSplice {
            from: u.segments.start as u64,
            items: e.confirmed_segments()[u.segments.clone()]
                .iter()
                .map(|x| r.final_segment(x))
                .collect(),
        }),
        pivots: Some(pb::PivotSplice {
            from: u.pivots.start as u64,
            items: e.confirmed_pivots()[u.pivots.clone()]
                .iter()
                .map(|z| r.final_pivot(z))
                .collect(),
        }),
        signals: Some(pb::SignalSplice {
            from: u.signals.start as u64,
            items: e.final_signals()[u.signals.clone()]
                .iter()
                .map(|x| r.signal(*x))
                .collect(),
        }),
        last_pen: r.pens.last().map(|p| r.pen(p, false)),
        forming_pen: e.forming_pen().map(|p| r.pen(&p, false)),
        tail: u.tail_changed.then(|| r.tail(s.tail())),
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
