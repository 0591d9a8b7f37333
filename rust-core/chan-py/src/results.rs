//! Typed results: the items of the analysis document (`docs/CHAN_THEORY.md` §12.6) and of the
//! update document (§12.7) as frozen Python classes. Each is built from the core's rendering of
//! the document (`chan_core::document`), the one the JSON is serialized from, so an object's
//! fields are exactly the document's values.

use chan_core::document::{
    DegreeDoc, DegreeUpdateDoc, Document, FractalDoc, MacdDoc, PenDoc, PivotDoc, Point as PointDoc,
    SegmentDoc, SignalDoc, Splice as SpliceDoc, TailDoc,
};
use chan_core::signal::Edge;
use chan_core::timestamp::format_ms;
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::sync::OnceLock;

use crate::json_error;

/// A value as Python shows it in a `repr`.
trait Repr {
    fn repr(&self) -> String;
}

impl Repr for u32 {
    fn repr(&self) -> String {
        self.to_string()
    }
}

impl Repr for usize {
    fn repr(&self) -> String {
        self.to_string()
    }
}

impl Repr for f64 {
    fn repr(&self) -> String {
        format!("{self:?}")
    }
}

impl Repr for bool {
    fn repr(&self) -> String {
        (if *self { "True" } else { "False" }).into()
    }
}

impl Repr for &'static str {
    fn repr(&self) -> String {
        format!("'{self}'")
    }
}

impl Repr for String {
    fn repr(&self) -> String {
        format!("'{self}'")
    }
}

impl<T: Repr> Repr for Option<T> {
    fn repr(&self) -> String {
        self.as_ref().map_or_else(|| "None".into(), Repr::repr)
    }
}

/// The Python name of a field: its own, or the one given (`is_final = "final"`).
macro_rules! field_name {
    ($f:ident) => {
        stringify!($f)
    };
    ($f:ident, $n:literal) => {
        $n
    };
}

/// `__repr__` as a dataclass shows itself: `Pen(direction='up', start=Point(…), …)`.
macro_rules! py_repr {
    ($($t:ident { $($f:ident $(= $n:literal)?),* })*) => {$(
        impl Repr for $t {
            fn repr(&self) -> String {
                let fields = [$(format!("{}={}", field_name!($f $(, $n)?), self.$f.repr())),*];
                format!("{}({})", stringify!($t), fields.join(", "))
            }
        }

        #[pymethods]
        impl $t {
            fn __repr__(&self) -> String {
                self.repr()
            }
        }
    )*};
}

/// A point on the chart: raw bar index, its time (ISO-8601 UTC) and a price.
#[pyclass(frozen, eq, module = "trading_system.native")]
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    #[pyo3(get)]
    index: u32,
    #[pyo3(get)]
    time: String,
    #[pyo3(get)]
    price: f64,
}

impl From<&PointDoc> for Point {
    fn from(p: &PointDoc) -> Self {
        Self {
            index: p.index,
            time: format_ms(p.time),
            price: p.price,
        }
    }
}

/// A fractal (分型): `kind` `"top"` (顶分型) or `"bottom"` (底分型), at a merged bar and the raw
/// bar holding its extreme.
#[pyclass(frozen, eq, module = "trading_system.native")]
#[derive(Debug, Clone, PartialEq)]
pub struct Fractal {
    #[pyo3(get)]
    kind: &'static str,
    #[pyo3(get)]
    merged_index: u32,
    #[pyo3(get)]
    index: u32,
    #[pyo3(get)]
    time: String,
    #[pyo3(get)]
    price: f64,
}

impl From<&FractalDoc> for Fractal {
    fn from(f: &FractalDoc) -> Self {
        Self {
            kind: f.kind.as_str(),
            merged_index: f.merged_index,
            index: f.index,
            time: format_ms(f.time),
            price: f.price,
        }
    }
}

/// A pen (笔): `direction` `"up"` or `"down"`; `final` is `None` for the forming pen.
#[pyclass(frozen, eq, module = "trading_system.native")]
#[derive(Debug, Clone, PartialEq)]
pub struct Pen {
    #[pyo3(get)]
    direction: &'static str,
    #[pyo3(get)]
    start: Point,
    #[pyo3(get)]
    end: Point,
    #[pyo3(get, name = "final")]
    is_final: Option<bool>,
}

impl From<&PenDoc> for Pen {
    fn from(p: &PenDoc) -> Self {
        Self {
            direction: p.direction.as_str(),
            start: (&p.start).into(),
            end: (&p.end).into(),
            is_final: p.is_final,
        }
    }
}

/// A segment (线段): at least three pens, from its first pen's start to its last pen's end;
/// `gap` when its end waited for a second-case (有缺口) confirmation.
#[pyclass(frozen, eq, module = "trading_system.native")]
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    #[pyo3(get)]
    direction: &'static str,
    #[pyo3(get)]
    start: Point,
    #[pyo3(get)]
    end: Point,
    #[pyo3(get)]
    first_pen: u32,
    #[pyo3(get)]
    last_pen: u32,
    #[pyo3(get)]
    confirmed: bool,
    #[pyo3(get)]
    gap: bool,
}

impl From<&SegmentDoc> for Segment {
    fn from(s: &SegmentDoc) -> Self {
        Self {
            direction: s.direction.as_str(),
            start: (&s.start).into(),
            end: (&s.end).into(),
            first_pen: s.first_pen,
            last_pen: s.last_pen,
            confirmed: s.confirmed,
            gap: s.gap,
        }
    }
}

/// A pivot (中枢) of a segment: the overlap `zd..zg` of its pens and their range `dd..gg`;
/// `segment` is the index in the document's segments.
#[pyclass(frozen, eq, module = "trading_system.native")]
#[derive(Debug, Clone, PartialEq)]
pub struct Pivot {
    #[pyo3(get)]
    segment: u32,
    #[pyo3(get)]
    first_pen: u32,
    #[pyo3(get)]
    last_pen: u32,
    #[pyo3(get)]
    zd: f64,
    #[pyo3(get)]
    zg: f64,
    #[pyo3(get)]
    dd: f64,
    #[pyo3(get)]
    gg: f64,
    #[pyo3(get)]
    start: Point,
    #[pyo3(get)]
    end: Point,
    #[pyo3(get)]
    confirmed: bool,
}

impl From<&PivotDoc> for Pivot {
    fn from(z: &PivotDoc) -> Self {
        Self {
            segment: z.segment,
            first_pen: z.first_pen,
            last_pen: z.last_pen,
            zd: z.zd,
            zg: z.zg,
            dd: z.dd,
            gg: z.gg,
            start: (&z.start).into(),
            end: (&z.end).into(),
            confirmed: z.confirmed,
        }
    }
}

/// A buy/sell point (买卖点) of `type` `"1"`, `"2"` or `"3"` (with its variants), `side`
/// `"buy"` or `"sell"`, at the end of pen `pen`; `final` once it can no longer change; what it
/// was derived from as in the document (§12.6): `pivot`, `zd`, `zg`, type 1's
/// `entering_strength`, `leaving_strength` and `ratio`, type 2's `follows`, type 3's `edge`.
#[pyclass(frozen, eq, module = "trading_system.native")]
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    #[pyo3(get, name = "type")]
    kind: String,
    #[pyo3(get)]
    side: &'static str,
    #[pyo3(get)]
    pen: u32,
    #[pyo3(get)]
    index: u32,
    #[pyo3(get)]
    time: String,
    #[pyo3(get)]
    price: f64,
    #[pyo3(get, name = "final")]
    is_final: bool,
    #[pyo3(get)]
    pivot: u32,
    #[pyo3(get)]
    zd: f64,
    #[pyo3(get)]
    zg: f64,
    #[pyo3(get)]
    entering_strength: Option<f64>,
    #[pyo3(get)]
    leaving_strength: Option<f64>,
    #[pyo3(get)]
    ratio: Option<f64>,
    #[pyo3(get)]
    follows: Option<u32>,
    #[pyo3(get)]
    edge: Option<&'static str>,
}

impl From<&SignalDoc> for Signal {
    fn from(s: &SignalDoc) -> Self {
        Self {
            kind: s.kind.to_string(),
            side: s.side.as_str(),
            pen: s.pen,
            index: s.index,
            time: format_ms(s.time),
            price: s.price,
            is_final: s.is_final,
            pivot: s.pivot,
            zd: s.zd,
            zg: s.zg,
            entering_strength: s.entering_strength,
            leaving_strength: s.leaving_strength,
            ratio: s.ratio,
            follows: s.follows,
            edge: s.edge.map(Edge::as_str),
        }
    }
}

/// A bar whose high/low were widened to cover open/close (`validation.repair`).
#[pyclass(frozen, eq, module = "trading_system.native")]
#[derive(Debug, Clone, PartialEq)]
pub struct Repair {
    #[pyo3(get)]
    index: usize,
    #[pyo3(get)]
    old_high: f64,
    #[pyo3(get)]
    old_low: f64,
    #[pyo3(get)]
    new_high: f64,
    #[pyo3(get)]
    new_low: f64,
}

impl From<&chan_core::kline::Repair> for Repair {
    fn from(r: &chan_core::kline::Repair) -> Self {
        Self {
            index: r.index,
            old_high: r.old_high,
            old_low: r.old_low,
            new_high: r.new_high,
            new_low: r.new_low,
        }
    }
}

/// The MACD of one bar; `None` where absent (before the TA-Lib lookback with `seed: sma`).
#[pyclass(frozen, eq, module = "trading_system.native")]
#[derive(Debug, Clone, PartialEq)]
pub struct MacdPoint {
    #[pyo3(get)]
    dif: Option<f64>,
    #[pyo3(get)]
    dea: Option<f64>,
    #[pyo3(get)]
    histogram: Option<f64>,
}

impl MacdPoint {
    pub(crate) fn new(dif: Option<f64>, dea: Option<f64>, histogram: Option<f64>) -> Self {
        Self {
            dif,
            dea,
            histogram,
        }
    }
}

/// The MACD series per raw bar, as float64 arrays with NaN where a value is absent (`null` in
/// the document). Each read gives a new array.
#[pyclass(frozen, module = "trading_system.native")]
pub struct Macd {
    dif: Vec<f64>,
    dea: Vec<f64>,
    histogram: Vec<f64>,
}

fn nan_for_none(v: &[Option<f64>]) -> Vec<f64> {
    v.iter().map(|x| x.unwrap_or(f64::NAN)).collect()
}

impl From<&MacdDoc> for Macd {
    fn from(m: &MacdDoc) -> Self {
        Self {
            dif: nan_for_none(&m.dif),
            dea: nan_for_none(&m.dea),
            histogram: nan_for_none(&m.histogram),
        }
    }
}

#[pymethods]
impl Macd {
    #[getter]
    fn dif<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, &self.dif)
    }

    #[getter]
    fn dea<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, &self.dea)
    }

    #[getter]
    fn histogram<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, &self.histogram)
    }

    fn __len__(&self) -> usize {
        self.dif.len()
    }

    fn __repr__(&self) -> String {
        format!("<Macd bars={}>", self.dif.len())
    }
}

py_repr! {
    Point { index, time, price }
    Fractal { kind, merged_index, index, time, price }
    Pen { direction, start, end, is_final = "final" }
    Segment { direction, start, end, first_pen, last_pen, confirmed, gap }
    Pivot { segment, first_pen, last_pen, zd, zg, dd, gg, start, end, confirmed }
    Signal {
        kind = "type", side, pen, index, time, price, is_final = "final", pivot, zd, zg,
        entering_strength, leaving_strength, ratio, follows, edge
    }
    Repair { index, old_high, old_low, new_high, new_low }
    MacdPoint { dif, dea, histogram }
}

/// One higher degree (线段的线段, spec §13): its segments, pivots and buy/sell points;
/// `first_pen`, `last_pen` and `pen` index that degree's strokes (the segments of the degree
/// below).
#[pyclass(frozen, module = "trading_system.native")]
pub struct Degree {
    doc: DegreeDoc,
}

impl From<&DegreeDoc> for Degree {
    fn from(d: &DegreeDoc) -> Self {
        Self { doc: d.clone() }
    }
}

#[pymethods]
impl Degree {
    #[getter]
    fn degree(&self) -> u32 {
        self.doc.degree
    }

    #[getter]
    fn segments<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        tuple::<_, Segment>(py, &self.doc.segments)
    }

    #[getter]
    fn pivots<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        tuple::<_, Pivot>(py, &self.doc.pivots)
    }

    #[getter]
    fn signals<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        tuple::<_, Signal>(py, &self.doc.signals)
    }

    fn __repr__(&self) -> String {
        format!(
            "<Degree {} segments={} pivots={} signals={}>",
            self.doc.degree,
            self.doc.segments.len(),
            self.doc.pivots.len(),
            self.doc.signals.len()
        )
    }
}

/// A tuple of the classes made from `items`.
pub(crate) fn tuple<'py, 'a, D: 'a, T>(
    py: Python<'py>,
    items: impl IntoIterator<Item = &'a D, IntoIter: ExactSizeIterator>,
) -> PyResult<Bound<'py, PyTuple>>
where
    T: From<&'a D> + pyo3::PyClass + Into<PyClassInitializer<T>>,
{
    let objects = items
        .into_iter()
        .map(|x| Bound::new(py, T::from(x)))
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, objects)
}

/// A change to a list of final items: truncate the list to `start` items (the document's
/// `from`), then append `items`.
#[pyclass(frozen, module = "trading_system.native")]
pub struct Splice {
    #[pyo3(get)]
    start: usize,
    #[pyo3(get)]
    items: Py<PyTuple>,
}

impl Splice {
    pub(crate) fn new<'a, D: 'a, T>(py: Python<'_>, s: &'a SpliceDoc<D>) -> PyResult<Self>
    where
        T: From<&'a D> + pyo3::PyClass + Into<PyClassInitializer<T>>,
    {
        Ok(Self {
            start: s.from,
            items: tuple::<D, T>(py, &s.items)?.unbind(),
        })
    }
}

#[pymethods]
impl Splice {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Splice(start={}, items={} items)",
            self.start,
            self.items.bind(py).len()
        )
    }
}

/// The non-final segments, pivots and points (all unconfirmed).
#[pyclass(frozen, module = "trading_system.native")]
pub struct Tail {
    #[pyo3(get)]
    segments: Py<PyTuple>,
    #[pyo3(get)]
    pivots: Py<PyTuple>,
    #[pyo3(get)]
    signals: Py<PyTuple>,
}

impl Tail {
    pub(crate) fn new(py: Python<'_>, t: &TailDoc) -> PyResult<Self> {
        Ok(Self {
            segments: tuple::<_, Segment>(py, &t.segments)?.unbind(),
            pivots: tuple::<_, Pivot>(py, &t.pivots)?.unbind(),
            signals: tuple::<_, Signal>(py, &t.signals)?.unbind(),
        })
    }
}

#[pymethods]
impl Tail {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Tail(segments={}, pivots={}, signals={})",
            self.segments.bind(py).len(),
            self.pivots.bind(py).len(),
            self.signals.bind(py).len()
        )
    }
}

/// What one call changed at a higher degree (spec §13): its segments, pivots and points
/// spliced, and its tail (`None` when it did not change), as degree 1's in `Update`.
#[pyclass(frozen, module = "trading_system.native")]
pub struct DegreeUpdate {
    #[pyo3(get)]
    degree: u32,
    #[pyo3(get)]
    segments: Py<Splice>,
    #[pyo3(get)]
    pivots: Py<Splice>,
    #[pyo3(get)]
    signals: Py<Splice>,
    #[pyo3(get)]
    tail: Option<Py<Tail>>,
}

impl DegreeUpdate {
    pub(crate) fn new(py: Python<'_>, d: &DegreeUpdateDoc) -> PyResult<Self> {
        Ok(Self {
            degree: d.degree,
            segments: Py::new(py, Splice::new::<_, Segment>(py, &d.segments)?)?,
            pivots: Py::new(py, Splice::new::<_, Pivot>(py, &d.pivots)?)?,
            signals: Py::new(py, Splice::new::<_, Signal>(py, &d.signals)?)?,
            tail: d
                .tail
                .as_ref()
                .map(|t| Py::new(py, Tail::new(py, t)?))
                .transpose()?,
        })
    }
}

#[pymethods]
impl DegreeUpdate {
    fn __repr__(&self) -> String {
        format!(
            "<DegreeUpdate {} tail={}>",
            self.degree,
            if self.tail.is_some() {
                "changed"
            } else {
                "same"
            }
        )
    }
}

/// Where an [`Analysis`] comes from: a batch analysis, whose document is rendered on the first
/// typed read and kept, or a session's document.
enum Source {
    Batch {
        analysis: Box<chan_core::Analysis>,
        document: OnceLock<Document>,
    },
    Session(Document),
}

/// An analysis: the structure of a series. The typed views (`pens`, `segments` …) are made from
/// the analysis document, rendered on the first one read; `to_json()` is the document's text,
/// exactly what `trading-engine analyze` prints.
#[pyclass(frozen, module = "trading_system.native")]
pub struct Analysis {
    source: Source,
}

impl Analysis {
    pub(crate) fn batch(analysis: chan_core::Analysis) -> Self {
        let (analysis, document) = (Box::new(analysis), OnceLock::new());
        Self {
            source: Source::Batch { analysis, document },
        }
    }

    pub(crate) fn of_session(document: Document) -> Self {
        Self {
            source: Source::Session(document),
        }
    }

    fn doc(&self, py: Python<'_>) -> &Document {
        match &self.source {
            Source::Session(d) => d,
            Source::Batch { analysis, document } => {
                if let Some(d) = document.get() {
                    d
                } else {
                    // Rendered outside `get_or_init`: a thread waiting there would hold the
                    // GIL this one needs back after rendering without it.
                    let d = py.detach(|| analysis.document());
                    document.get_or_init(|| d)
                }
            }
        }
    }
}

#[pymethods]
impl Analysis {
    /// The analysis document as JSON: exactly what `trading-engine analyze` prints.
    fn to_json(&self, py: Python<'_>) -> PyResult<String> {
        py.detach(|| match &self.source {
            Source::Session(d) => serde_json::to_string(d),
            Source::Batch { analysis, document } => match document.get() {
                Some(d) => serde_json::to_string(d),
                // Not kept: a caller who wants only the text does not pay for holding it.
                None => serde_json::to_string(&analysis.document()),
            },
        })
        .map_err(|e| json_error(&e))
    }

    /// The configuration the analysis used, as JSON (the document's `config`).
    fn config_json(&self, py: Python<'_>) -> PyResult<String> {
        serde_json::to_string(&self.doc(py).config).map_err(|e| json_error(&e))
    }

    /// Number of raw bars.
    #[getter]
    fn bars(&self) -> usize {
        match &self.source {
            Source::Batch { analysis, .. } => analysis.engine.bars(),
            Source::Session(d) => d.bars,
        }
    }

    /// Number of bars after inclusion handling (包含处理).
    #[getter]
    fn merged_bars(&self) -> usize {
        match &self.source {
            Source::Batch { analysis, .. } => analysis.engine.merged().len(),
            Source::Session(d) => d.merged_bars,
        }
    }

    #[getter]
    fn fractals<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        tuple::<_, Fractal>(py, &self.doc(py).fractals)
    }

    /// Every pen; all but the last are final.
    #[getter]
    fn pens<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        tuple::<_, Pen>(py, &self.doc(py).pens)
    }

    /// The move after the last pen, not yet a pen.
    #[getter]
    fn forming_pen(&self, py: Python<'_>) -> Option<Pen> {
        self.doc(py).forming_pen.as_ref().map(Pen::from)
    }

    /// Confirmed segments first, then the non-confirmed tail.
    #[getter]
    fn segments<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        tuple::<_, Segment>(py, &self.doc(py).segments)
    }

    #[getter]
    fn pivots<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        tuple::<_, Pivot>(py, &self.doc(py).pivots)
    }

    #[getter]
    fn signals<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        tuple::<_, Signal>(py, &self.doc(py).signals)
    }

    /// Degrees 2..`structure.degrees` (segments of segments), in order.
    #[getter]
    fn degrees<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        tuple::<_, Degree>(py, &self.doc(py).degrees)
    }

    /// The MACD series, when asked for (`with_macd`).
    #[getter]
    fn macd(&self, py: Python<'_>) -> Option<Macd> {
        self.doc(py).macd.as_ref().map(Macd::from)
    }

    #[getter]
    fn repairs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        tuple::<_, Repair>(py, &self.doc(py).repairs)
    }

    /// The lengths of the document's lists (without rendering it, for a batch analysis).
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        match &self.source {
            Source::Batch { analysis, .. } => {
                let (e, t) = (&analysis.engine, &analysis.tail);
                d.set_item("bars", e.bars())?;
                d.set_item("merged_bars", e.merged().len())?;
                d.set_item("fractals", e.fractals().len())?;
                d.set_item("pens", e.pens().len())?;
                d.set_item("segments", e.confirmed_segments().len() + t.segments.len())?;
                d.set_item("pivots", e.confirmed_pivots().len() + t.pivots.len())?;
                d.set_item("signals", e.final_signals().len() + t.signals.len())?;
            }
            Source::Session(doc) => {
                d.set_item("bars", doc.bars)?;
                d.set_item("merged_bars", doc.merged_bars)?;
                d.set_item("fractals", doc.fractals.len())?;
                d.set_item("pens", doc.pens.len())?;
                d.set_item("segments", doc.segments.len())?;
                d.set_item("pivots", doc.pivots.len())?;
                d.set_item("signals", doc.signals.len())?;
            }
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!("<Analysis bars={}>", self.bars())
    }
}
