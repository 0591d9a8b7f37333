//! The incremental session and its change reports, read lazily.
//!
//! `append` and `replace_last` return an [`Update`]: a handle on the core's change report (a
//! few ranges and flags), not the update document. The document is rendered from the session
//! on the first read of a field that needs it, which is only right while the session is still
//! in the state the call left. So before the session changes again it renders the previous
//! report if a handle on it is still alive (`settle`); a report nobody holds is dropped
//! unread. A caller who does not read the report pays for neither the rendering nor the
//! Python objects.

use std::sync::{Arc, OnceLock};

use chan_core::document::UpdateDoc;
use chan_core::Bar;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::results::{DegreeUpdate, Fractal, MacdPoint, Pen, Pivot, Segment, Signal, Splice, Tail};
use crate::{engine_config, json_error, to_py};

/// One call's change report, shared by the session and the handle returned for it.
struct Report {
    update: chan_core::Update,
    /// The session's state this report describes ([`Session::generation`] after the call).
    generation: u64,
    merged_bars: usize,
    document: OnceLock<UpdateDoc>,
}

/// An incremental session: append bars, replace the last one, read the analysis.
#[pyclass(module = "trading_system.native")]
pub struct Session {
    inner: chan_core::Session,
    /// Counts the calls that changed the state.
    generation: u64,
    /// The report of the latest call that changed the state.
    last: Option<Arc<Report>>,
}

impl Session {
    /// Renders the latest report while it still can be: called before every change of state.
    #[inline]
    fn settle(&mut self) {
        if let Some(r) = &self.last {
            // More than the session's own reference: a handle on it is alive in Python.
            if Arc::strong_count(r) > 1 && r.document.get().is_none() {
                let doc = self.inner.update_doc(&r.update);
                let _ = r.document.set(doc);
            }
        }
    }

    /// Records the report of a call that changed the state; returns it for the handle.
    #[inline]
    fn record(&mut self, update: chan_core::Update) -> Arc<Report> {
        debug_assert_eq!(
            self.inner.bars(),
            update.index + 1,
            "the call's bar is the last"
        );
        self.generation += 1;
        let report = Report {
            update,
            generation: self.generation,
            merged_bars: self.inner.engine().merged().len(),
            document: OnceLock::new(),
        };
        // The previous report's allocation is reused when no handle holds it any more.
        match self.last.as_mut().and_then(Arc::get_mut) {
            Some(slot) => *slot = report,
            None => self.last = Some(Arc::new(report)),
        }
        Arc::clone(self.last.as_ref().expect("just recorded"))
    }

    fn apply(slf: &Bound<'_, Self>, bar: Bar, replace: bool) -> PyResult<Update> {
        let report = {
            let mut s = slf.try_borrow_mut()?;
            s.settle();
            let u = if replace {
                s.inner.replace_last(bar)
            } else {
                s.inner.append(bar)
            };
            // A rejected bar changes nothing: the previous report stays valid.
            let u = u.map_err(to_py)?;
            s.record(u)
        };
        Ok(Update {
            session: slf.clone().unbind(),
            report,
        })
    }
}

#[pymethods]
impl Session {
    #[new]
    #[pyo3(signature = (config=None, with_macd=false))]
    fn new(config: Option<&str>, with_macd: bool) -> PyResult<Self> {
        let cfg = engine_config(config)?;
        let inner = chan_core::Session::new(cfg, with_macd).map_err(to_py)?;
        Ok(Self {
            inner,
            generation: 0,
            last: None,
        })
    }

    /// Appends a bar; returns its change report. A rejected bar changes nothing.
    fn append(
        slf: &Bound<'_, Self>,
        time: i64,
        open: f64,
        high: f64,
        low: f64,
        close: f64,
        volume: f64,
    ) -> PyResult<Update> {
        let bar = Bar::new(time, open, high, low, close, volume);
        Self::apply(slf, bar, false)
    }

    /// Replaces the last bar; returns its change report. StateError when empty.
    fn replace_last(
        slf: &Bound<'_, Self>,
        time: i64,
        open: f64,
        high: f64,
        low: f64,
        close: f64,
        volume: f64,
    ) -> PyResult<Update> {
        let bar = Bar::new(time, open, high, low, close, volume);
        Self::apply(slf, bar, true)
    }

    /// The analysis of the series so far (a snapshot: later calls do not change it).
    fn analysis(&self) -> crate::results::Analysis {
        crate::results::Analysis::of_session(self.inner.document())
    }

    /// The full analysis document of the series so far (JSON).
    fn to_json(&self, py: Python<'_>) -> PyResult<String> {
        py.detach(|| serde_json::to_string(&self.inner.document()))
            .map_err(|e| json_error(&e))
    }

    /// Number of bars applied.
    #[getter]
    fn bars(&self) -> usize {
        self.inner.bars()
    }

    fn __repr__(&self) -> String {
        format!("<Session bars={}>", self.inner.bars())
    }
}

/// What one call changed (spec §10, the update document of §12.7), read lazily: the index,
/// flags, counts and MACD are at hand; the rest is rendered on first read.
#[pyclass(frozen, module = "trading_system.native")]
pub struct Update {
    session: Py<Session>,
    report: Arc<Report>,
}

impl Update {
    /// The update document, rendered on first use.
    fn doc(&self, py: Python<'_>) -> PyResult<&UpdateDoc> {
        if let Some(d) = self.report.document.get() {
            return Ok(d);
        }
        let s = self.session.bind(py).try_borrow()?;
        // `settle` renders a report a handle holds before the state moves on, so an unrendered
        // one always describes the state as it is.
        if s.generation != self.report.generation {
            debug_assert!(false, "a held change report was not rendered in time");
            return Err(PyRuntimeError::new_err(
                "internal error: the change report no longer matches the session",
            ));
        }
        let d = s.inner.update_doc(&self.report.update);
        Ok(self.report.document.get_or_init(|| d))
    }
}

#[pymethods]
impl Update {
    /// The index of the bar appended or replaced.
    #[getter]
    fn index(&self) -> usize {
        self.report.update.index
    }

    #[getter]
    fn replaced(&self) -> bool {
        self.report.update.replaced
    }

    /// The bar's high/low were repaired (`validation.repair`).
    #[getter]
    fn repaired(&self) -> bool {
        self.report.update.repaired
    }

    /// Number of bars after the call.
    #[getter]
    fn bars(&self) -> usize {
        self.report.update.index + 1
    }

    #[getter]
    fn merged_bars(&self) -> usize {
        self.report.merged_bars
    }

    /// The MACD of the bar.
    #[getter]
    fn macd(&self) -> MacdPoint {
        let m = self.report.update.macd;
        let opt = |x: f64| (!x.is_nan()).then_some(x);
        MacdPoint::new(opt(m.dif), opt(m.dea), opt(m.histogram))
    }

    #[getter]
    fn fractals(&self, py: Python<'_>) -> PyResult<Splice> {
        Splice::new::<_, Fractal>(py, &self.doc(py)?.fractals)
    }

    /// Final pens (every pen but the last).
    #[getter]
    fn pens(&self, py: Python<'_>) -> PyResult<Splice> {
        Splice::new::<_, Pen>(py, &self.doc(py)?.pens)
    }

    #[getter]
    fn segments(&self, py: Python<'_>) -> PyResult<Splice> {
        Splice::new::<_, Segment>(py, &self.doc(py)?.segments)
    }

    #[getter]
    fn pivots(&self, py: Python<'_>) -> PyResult<Splice> {
        Splice::new::<_, Pivot>(py, &self.doc(py)?.pivots)
    }

    #[getter]
    fn signals(&self, py: Python<'_>) -> PyResult<Splice> {
        Splice::new::<_, Signal>(py, &self.doc(py)?.signals)
    }

    /// The last pen (not final), if any.
    #[getter]
    fn last_pen(&self, py: Python<'_>) -> PyResult<Option<Pen>> {
        Ok(self.doc(py)?.last_pen.as_ref().map(Pen::from))
    }

    #[getter]
    fn forming_pen(&self, py: Python<'_>) -> PyResult<Option<Pen>> {
        Ok(self.doc(py)?.forming_pen.as_ref().map(Pen::from))
    }

    /// The new tail; `None` when it did not change.
    #[getter]
    fn tail(&self, py: Python<'_>) -> PyResult<Option<Tail>> {
        self.doc(py)?
            .tail
            .as_ref()
            .map(|t| Tail::new(py, t))
            .transpose()
    }

    /// Degrees 2..=`structure.degrees` (spec §13), in order: what the call changed at each.
    #[getter]
    fn degrees<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let items = (self.doc(py)?.degrees.iter())
            .map(|d| DegreeUpdate::new(py, d))
            .collect::<PyResult<Vec<_>>>()?;
        PyTuple::new(py, items)
    }

    /// The update document as JSON (what the gRPC servers' clients rebuild the document from).
    fn to_json(&self, py: Python<'_>) -> PyResult<String> {
        serde_json::to_string(self.doc(py)?).map_err(|e| json_error(&e))
    }

    fn __repr__(&self) -> String {
        let u = &self.report.update;
        format!(
            "<Update index={} replaced={} bars={}>",
            u.index,
            u.replaced,
            u.index + 1
        )
    }
}
