//! The analysis document: the JSON shape every engine and interface produces, and the one
//! rendering of engine items for every output. The items hold typed values (epoch
//! milliseconds, enums); the JSON shows them as text (ISO-8601 UTC, `"up"`), and the gRPC
//! server and the Python binding convert these items field by field, so what is final,
//! confirmed or where a point lies is decided here only.

use std::ops::Range;

use serde::{Serialize, Serializer};

use crate::analysis::{Degree, DegreeChange, Engine, LevelLists, Session, Tail, Update};
use crate::config::EngineConfig;
use crate::fractal::{Fractal, FractalKind};
use crate::kline::{Direction, Repair};
use crate::memory::Column;
use crate::pen::Pen;
use crate::pivot::Pivot;
use crate::segment::SegmentSpan;
use crate::signal::{Edge, Side, Signal};
use crate::timestamp::format_ms;

/// An epoch-milliseconds time as the document shows it: ISO-8601 UTC.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's `serialize_with` passes a reference
fn iso<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_ms(*ms))
}

/// A point type (`"1"`, `"2"`, `"3"`) as the document shows it: text.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's `serialize_with` passes a reference
fn text<S: Serializer>(kind: &u8, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(kind)
}

/// A point on the chart: raw bar index, its time (epoch ms; ISO-8601 UTC in the JSON) and a
/// price.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub index: u32,
    #[serde(serialize_with = "iso")]
    pub time: i64,
    pub price: f64,
}

/// A fractal (分型) as output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FractalDoc {
    pub kind: FractalKind,
    pub merged_index: u32,
    pub index: u32,
    #[serde(serialize_with = "iso")]
    pub time: i64,
    pub price: f64,
}

/// A pen (笔) as output; `final` is absent for the forming pen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PenDoc {
    pub direction: Direction,
    pub start: Point,
    pub end: Point,
    #[serde(rename = "final", skip_serializing_if = "Option::is_none")]
    pub is_final: Option<bool>,
}

/// A segment (线段) as output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentDoc {
    pub direction: Direction,
    pub start: Point,
    pub end: Point,
    pub first_pen: u32,
    pub last_pen: u32,
    pub confirmed: bool,
    pub gap: bool,
}

/// A pivot (中枢) as output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PivotDoc {
    pub segment: u32,
    pub first_pen: u32,
    pub last_pen: u32,
    pub zd: f64,
    pub zg: f64,
    pub dd: f64,
    pub gg: f64,
    pub start: Point,
    pub end: Point,
    pub confirmed: bool,
}

/// A buy/sell point (买卖点) as output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignalDoc {
    #[serde(rename = "type", serialize_with = "text")]
    pub kind: u8,
    pub side: Side,
    pub pen: u32,
    pub index: u32,
    #[serde(serialize_with = "iso")]
    pub time: i64,
    pub price: f64,
    #[serde(rename = "final")]
    pub is_final: bool,
    /// The pivot it was derived from: its index in the same degree's `pivots` (final pivots,
    /// then the tail's), and its edges.
    pub pivot: u32,
    pub zd: f64,
    pub zg: f64,
    /// Type 1: the §8 strengths the divergence test compared and `leaving / entering`; `None`
    /// (`null`) for types 2 and 3, and where the value is not a finite number (§12.5).
    pub entering_strength: Option<f64>,
    pub leaving_strength: Option<f64>,
    pub ratio: Option<f64>,
    /// Type 2: the pen of the type-1 point it follows.
    pub follows: Option<u32>,
    /// Type 3: the pivot edge the leaving pen cleared.
    pub edge: Option<Edge>,
}

/// MACD series per raw bar; `null` where absent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MacdDoc {
    pub dif: Vec<Option<f64>>,
    pub dea: Vec<Option<f64>>,
    pub histogram: Vec<Option<f64>>,
}

/// One higher degree (spec §13) as output: `first_pen`, `last_pen` and `pen` index that
/// degree's strokes (the segments of the degree below).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DegreeDoc {
    pub degree: u32,
    pub segments: Vec<SegmentDoc>,
    pub pivots: Vec<PivotDoc>,
    pub signals: Vec<SignalDoc>,
}

/// The analysis document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    pub bars: usize,
    pub merged_bars: usize,
    pub fractals: Vec<FractalDoc>,
    pub pens: Vec<PenDoc>,
    pub forming_pen: Option<PenDoc>,
    pub segments: Vec<SegmentDoc>,
    pub pivots: Vec<PivotDoc>,
    pub signals: Vec<SignalDoc>,
    /// Degrees 2..=`structure.degrees` (spec §13, §12.6), in order.
    pub degrees: Vec<DegreeDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub macd: Option<MacdDoc>,
    pub repairs: Vec<Repair>,
    pub config: EngineConfig,
}

fn point(times: &Column<i64>, f: &Fractal) -> Point {
    Point {
        index: f.index,
        time: times[f.index as usize],
        price: f.price,
    }
}

fn opt(x: f64) -> Option<f64> {
    (!x.is_nan()).then_some(x)
}

/// Renders engine items as documents; one place for the full document and the update document.
#[derive(Clone, Copy)]
struct Render<'a> {
    times: &'a Column<i64>,
    pens: &'a [Pen],
}

impl<'a> Render<'a> {
    fn new(e: &'a Engine) -> Self {
        Self {
            times: &e.times,
            pens: e.pens.pens(),
        }
    }

    fn fractal(&self, f: &Fractal) -> FractalDoc {
        FractalDoc {
            kind: f.kind,
            merged_index: f.merged,
            index: f.index,
            time: self.times[f.index as usize],
            price: f.price,
        }
    }

    fn pen(&self, p: &Pen, is_final: Option<bool>) -> PenDoc {
        PenDoc {
            direction: p.dir,
            start: point(self.times, &p.start),
            end: point(self.times, &p.end),
            is_final,
        }
    }

    fn segment(&self, s: &SegmentSpan, confirmed: bool) -> SegmentDoc {
        SegmentDoc {
            direction: s.dir,
            start: point(self.times, &self.pens[s.first_pen as usize].start),
            end: point(self.times, &self.pens[s.last_pen as usize].end),
            first_pen: s.first_pen,
            last_pen: s.last_pen,
            confirmed,
            gap: s.gap,
        }
    }

    /// A segment of the engine's confirmed list (a settled one has at least 3 pens).
    fn final_segment(&self, s: &SegmentSpan) -> SegmentDoc {
        self.segment(s, s.confirmable())
    }

    fn pivot(&self, z: &Pivot, confirmed: bool) -> PivotDoc {
        PivotDoc {
            segment: z.segment,
            first_pen: z.first_pen,
            last_pen: z.last_pen,
            zd: z.zd,
            zg: z.zg,
            dd: z.dd,
            gg: z.gg,
            start: point(self.times, &self.pens[z.first_pen as usize].start),
            end: point(self.times, &self.pens[z.last_pen as usize].end),
            confirmed,
        }
    }

    /// A pivot of the engine's list: confirmed when its segment is.
    fn final_pivot(&self, e: &Engine, z: &Pivot) -> PivotDoc {
        self.pivot(z, e.segments[z.segment as usize].confirmable())
    }

    /// A point whose pivot is `pivots[s.pivot]`, shown at index `offset + s.pivot` of the
    /// document's pivots (`offset`: the final pivots before a tail's).
    fn signal(&self, s: Signal, pivots: &[Pivot], offset: usize) -> SignalDoc {
        let end = &self.pens[s.pen as usize].end;
        let z = &pivots[s.pivot as usize];
        let strengths = s.strengths();
        let shown = |x: f64| x.is_finite().then_some(x);
        SignalDoc {
            kind: s.kind,
            side: s.side,
            pen: s.pen,
            index: end.index,
            time: self.times[end.index as usize],
            price: end.price,
            is_final: s.is_final,
            pivot: (offset + s.pivot as usize) as u32,
            zd: z.zd,
            zg: z.zg,
            entering_strength: strengths.and_then(|(e, _, _)| shown(e)),
            leaving_strength: strengths.and_then(|(_, l, _)| shown(l)),
            ratio: strengths.and_then(|(_, _, r)| shown(r)),
            follows: s.follows(),
            edge: s.edge(),
        }
    }

    /// A higher degree, rendered with its strokes as the pens.
    fn degree(times: &'a Column<i64>, d: &'a Degree) -> DegreeDoc {
        let r = Render {
            times,
            pens: &d.strokes,
        };
        DegreeDoc {
            degree: d.degree,
            segments: (d.segments.iter().enumerate())
                .map(|(j, s)| r.segment(s, d.confirmed(j)))
                .collect(),
            pivots: (d.pivots.iter())
                .map(|z| r.pivot(z, d.confirmed(z.segment as usize)))
                .collect(),
            signals: (d.signals.iter())
                .map(|g| r.signal(*g, &d.pivots, 0))
                .collect(),
        }
    }

    /// The tail, after `finals` final pivots.
    fn tail(&self, tail: &Tail, finals: usize) -> TailDoc {
        self.tail_of(&tail.segments, &tail.pivots, &tail.signals, finals)
    }

    /// A tail's segments, pivots and points, the pivots after `finals` final ones (a point's
    /// pivot indexes `pivots`).
    fn tail_of(
        &self,
        segments: &[SegmentSpan],
        pivots: &[Pivot],
        signals: &[Signal],
        finals: usize,
    ) -> TailDoc {
        TailDoc {
            segments: segments.iter().map(|s| self.segment(s, false)).collect(),
            pivots: pivots.iter().map(|z| self.pivot(z, false)).collect(),
            signals: (signals.iter())
                .map(|s| self.signal(*s, pivots, finals))
                .collect(),
        }
    }
}

/// The items of the document — everything but the counts, the MACD, the repairs and the
/// configuration, which outputs take from the engine as they are.
#[derive(Debug, Clone, PartialEq)]
pub struct Items {
    pub fractals: Vec<FractalDoc>,
    pub pens: Vec<PenDoc>,
    pub forming_pen: Option<PenDoc>,
    pub segments: Vec<SegmentDoc>,
    pub pivots: Vec<PivotDoc>,
    pub signals: Vec<SignalDoc>,
}

impl Items {
    /// Renders the engine's items and tail: final lists, then the tail's unconfirmed ones.
    pub fn build(e: &Engine, tail: &Tail) -> Items {
        let r = Render::new(e);
        let last = r.pens.len().saturating_sub(1);
        let tail = r.tail(tail, e.pivots.len());
        Items {
            fractals: e.fractals.iter().map(|f| r.fractal(f)).collect(),
            pens: r
                .pens
                .iter()
                .enumerate()
                .map(|(i, p)| r.pen(p, Some(i < last)))
                .collect(),
            forming_pen: e.forming_pen().map(|p| r.pen(&p, None)),
            segments: e
                .segments
                .iter()
                .map(|s| r.final_segment(s))
                .chain(tail.segments)
                .collect(),
            pivots: e
                .pivots
                .iter()
                .map(|z| r.final_pivot(e, z))
                .chain(tail.pivots)
                .collect(),
            signals: e
                .signals
                .iter()
                .map(|s| r.signal(*s, &e.pivots, 0))
                .chain(tail.signals)
                .collect(),
        }
    }
}

/// Higher degrees (§13) of an engine, rendered: for outputs that take the degree-1 items from
/// [`Items`].
pub fn degrees(e: &Engine, higher: &[Degree]) -> Vec<DegreeDoc> {
    higher.iter().map(|d| Render::degree(&e.times, d)).collect()
}

impl Document {
    /// Renders the engine's state and tail, with its higher degrees.
    pub fn build(e: &Engine, tail: &Tail, higher: &[Degree]) -> Document {
        let items = Items::build(e, tail);
        Document {
            bars: e.times.len(),
            merged_bars: e.merged.len(),
            fractals: items.fractals,
            pens: items.pens,
            forming_pen: items.forming_pen,
            segments: items.segments,
            pivots: items.pivots,
            signals: items.signals,
            degrees: degrees(e, higher),
            macd: e.keeps_macd().then(|| MacdDoc {
                dif: e.dif.iter().map(|&x| opt(x)).collect(),
                dea: e.dea.iter().map(|&x| opt(x)).collect(),
                histogram: e.histogram.iter().map(|&x| opt(x)).collect(),
            }),
            repairs: e.repairs.clone(),
            config: *e.config(),
        }
    }
}

/// The MACD of one bar; `null` where absent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MacdPointDoc {
    pub dif: Option<f64>,
    pub dea: Option<f64>,
    pub histogram: Option<f64>,
}

/// A change to a list of final items: the client truncates its list to `from` items, then
/// appends `items`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Splice<T> {
    pub from: usize,
    pub items: Vec<T>,
}

/// The non-final segments, pivots and points (all unconfirmed), replacing the previous ones.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TailDoc {
    pub segments: Vec<SegmentDoc>,
    pub pivots: Vec<PivotDoc>,
    pub signals: Vec<SignalDoc>,
}

/// What one stream message changed, as the JSON both engines produce (spec §10; the rendering
/// of an [`Update`]). A client keeps the final lists of the document and applies each update:
/// every [`Splice`] to its list; `last_pen` and `forming_pen` replace its own; `tail`, when not
/// `null`, replaces the tail (document segments = final segments + tail segments, likewise
/// pivots and signals). The document's pens are the final pens followed by `last_pen`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpdateDoc {
    pub index: usize,
    pub replaced: bool,
    pub repaired: bool,
    pub bars: usize,
    pub merged_bars: usize,
    pub macd: MacdPointDoc,
    pub fractals: Splice<FractalDoc>,
    /// Final pens (every pen but the last), with `final: true`.
    pub pens: Splice<PenDoc>,
    pub segments: Splice<SegmentDoc>,
    pub pivots: Splice<PivotDoc>,
    pub signals: Splice<SignalDoc>,
    /// The last pen (not final), if any.
    pub last_pen: Option<PenDoc>,
    pub forming_pen: Option<PenDoc>,
    /// The new tail; `null` when it did not change.
    pub tail: Option<TailDoc>,
    /// Degrees 2..=`structure.degrees` (spec §13), in order, each spliced and its tail replaced
    /// as degree 1's.
    pub degrees: Vec<DegreeUpdateDoc>,
}

/// What one stream message changed at a higher degree: the degree's `segments`, `pivots` and
/// `signals` of [`DegreeDoc`], spliced and replaced as [`UpdateDoc`] does for degree 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DegreeUpdateDoc {
    pub degree: u32,
    pub segments: Splice<SegmentDoc>,
    pub pivots: Splice<PivotDoc>,
    pub signals: Splice<SignalDoc>,
    pub tail: Option<TailDoc>,
}

fn splice<T, D>(items: &[T], r: &Range<usize>, f: impl Fn(&T) -> D) -> Splice<D> {
    Splice {
        from: r.start,
        items: items[r.clone()].iter().map(f).collect(),
    }
}

impl Session {
    /// Renders `u`, the report of this session's latest call, as an update document.
    pub fn update_doc(&self, u: &Update) -> UpdateDoc {
        let e = self.engine();
        let r = Render::new(e);
        let finals = r.pens.len().saturating_sub(1);
        UpdateDoc {
            index: u.index,
            replaced: u.replaced,
            repaired: u.repaired,
            bars: e.times.len(),
            merged_bars: e.merged.len(),
            macd: MacdPointDoc {
                dif: opt(u.macd.dif),
                dea: opt(u.macd.dea),
                histogram: opt(u.macd.histogram),
            },
            fractals: Splice {
                from: u.fractals.start,
                items: e
                    .fractals
                    .range(u.fractals.clone())
                    .map(|f| r.fractal(f))
                    .collect(),
            },
            pens: splice(&r.pens[..finals], &u.pens, |p| r.pen(p, Some(true))),
            segments: splice(&e.segments, &u.segments, |s| r.final_segment(s)),
            pivots: splice(&e.pivots, &u.pivots, |z| r.final_pivot(e, z)),
            signals: splice(&e.signals, &u.signals, |s| r.signal(*s, &e.pivots, 0)),
            last_pen: r.pens.last().map(|p| r.pen(p, Some(false))),
            forming_pen: e.forming_pen().map(|p| r.pen(&p, None)),
            tail: u.tail_changed.then(|| r.tail(self.tail(), e.pivots.len())),
            degrees: (self.degree_lists().zip(self.degree_changes()))
                .map(|(l, c)| degree_update(&e.times, l, &c))
                .collect(),
        }
    }
}

/// The change report `c` of the higher degree `l`.
fn degree_update(times: &Column<i64>, l: LevelLists, c: &DegreeChange) -> DegreeUpdateDoc {
    let r = Render {
        times,
        pens: l.strokes,
    };
    let settled = |z: &Pivot| l.segments[z.segment as usize].confirmable();
    DegreeUpdateDoc {
        degree: l.degree,
        segments: splice(l.segments, &c.segments, |s| r.final_segment(s)),
        pivots: splice(l.pivots, &c.pivots, |z| r.pivot(z, settled(z))),
        signals: splice(l.signals, &c.signals, |g| r.signal(*g, l.pivots, 0)),
        tail: (c.tail_changed).then(|| {
            let t = l.tail;
            r.tail_of(&t.segments, &t.pivots, &t.signals, l.pivots.len())
        }),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::MacdSeed;
    use crate::{Bar, EngineConfig, Session};

    /// The update document's exact text: field order, `from`/`items`, `null`s.
    #[test]
    fn update_document_text() {
        let mut cfg = EngineConfig::default();
        let mut s = Session::new(cfg, false).unwrap();
        let u = s.append(Bar::new(0, 10.0, 11.0, 9.0, 10.0, 5.0)).unwrap();
        assert_eq!(
            serde_json::to_string(&s.update_doc(&u)).unwrap(),
            concat!(
                r#"{"index":0,"replaced":false,"repaired":false,"bars":1,"merged_bars":1,"#,
                r#""macd":{"dif":0.0,"dea":0.0,"histogram":0.0},"#,
                r#""fractals":{"from":0,"items":[]},"pens":{"from":0,"items":[]},"#,
                r#""segments":{"from":0,"items":[]},"pivots":{"from":0,"items":[]},"#,
                r#""signals":{"from":0,"items":[]},"last_pen":null,"forming_pen":null,"tail":null,"#,
                r#""degrees":[{"degree":2,"segments":{"from":0,"items":[]},"#,
                r#""pivots":{"from":0,"items":[]},"signals":{"from":0,"items":[]},"tail":null}]}"#
            )
        );
        // MACD values absent under the TA-Lib seed are null; a repair is flagged.
        cfg.macd.seed = MacdSeed::Sma;
        cfg.validation.repair = true;
        let mut s = Session::new(cfg, false).unwrap();
        s.append(Bar::new(0, 10.0, 11.0, 9.0, 10.0, 5.0)).unwrap();
        let u = s
            .replace_last(Bar::new(0, 10.0, 9.5, 9.0, 10.0, 5.0))
            .unwrap();
        let text = serde_json::to_string(&s.update_doc(&u)).unwrap();
        assert!(
            text.starts_with(concat!(
                r#"{"index":0,"replaced":true,"repaired":true,"bars":1,"merged_bars":1,"#,
                r#""macd":{"dif":null,"dea":null,"histogram":null},"#
            )),
            "{text}"
        );
    }

    /// Once pens exist: the last pen is not final, final pens are, and a changed tail is whole.
    #[test]
    fn update_document_pens_and_tail() {
        let mut s = Session::new(EngineConfig::default(), false).unwrap();
        let mut last = None;
        // A zigzag: pens form every few bars.
        for i in 0..60i64 {
            let p = 100.0 + 10.0 * ((i % 12) as f64 - 6.0).abs();
            let u = s
                .append(Bar::new(i * 60_000, p, p + 1.0, p - 1.0, p, 1.0))
                .unwrap();
            last = Some(s.update_doc(&u));
        }
        let d = last.unwrap();
        let pens = s.engine().pens();
        assert!(pens.len() >= 3, "the series makes pens");
        assert_eq!(d.last_pen.as_ref().unwrap().is_final, Some(false));
        assert!(d.pens.items.iter().all(|p| p.is_final == Some(true)));
        let doc = s.document();
        assert_eq!(doc.pens.last(), d.last_pen.as_ref());
        assert_eq!(doc.forming_pen, d.forming_pen);
        let v = serde_json::to_value(&d).unwrap();
        assert!(v["tail"].is_null() || v["tail"]["segments"].is_array());
    }
}
