//! `trading_system.native`: the Chan theory core (`chan-core`) for Python.
//!
//! - `analyze(time, open, high, low, close, volume, config=None, with_macd=False)` analyzes a
//!   whole series given as numpy arrays (`time`: int64 epoch milliseconds, the others float64)
//!   and returns an `Analysis`: typed views of the analysis document (`pens`, `segments` …,
//!   frozen classes of [`results`]), and `to_json()`, the document the command line prints.
//! - `Session(config=None, with_macd=False)` is the incremental engine: `append` and
//!   `replace_last` return an `Update`, the change report of the update document
//!   (`docs/CHAN_THEORY.md` §12.7), rendered only when read ([`session`]).
//! - The types are declared for type checkers in `python-layer/trading_system/native.pyi`.
//! - `config` is `None` or a JSON object of overrides in sections, e.g.
//!   `'{"pen": {"definition": "traditional"}}'`.
//! - Errors: `InvalidBars(ValueError)` with args `(message, violations_json)`,
//!   `ConfigError(ValueError)` with args `(message, key)`, `StateError(RuntimeError)`.

// Doc comments of the Python-facing items are the Python help text: backticks would show.
#![allow(clippy::doc_markdown)]

mod results;
mod session;

use chan_core::{Bar, ChanError, EngineConfig};
use numpy::{PyReadonlyArray1, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use results::Analysis;
use session::{Session, Update};

create_exception!(
    trading_system.native,
    InvalidBars,
    PyValueError,
    "Bars that break a rule of spec §1; nothing was applied. args: (message, violations_json), \
     violations_json being a JSON list of {index, field, rule, message}."
);
create_exception!(
    trading_system.native,
    ConfigError,
    PyValueError,
    "An unknown, mistyped or out-of-range configuration key. args: (message, key)."
);
create_exception!(
    trading_system.native,
    StateError,
    PyRuntimeError,
    "A call the session's state does not allow (replace_last on an empty session)."
);

pub(crate) fn to_py(e: ChanError) -> PyErr {
    let message = e.to_string();
    match e {
        ChanError::InvalidBars(v) => {
            let json = serde_json::to_string(&v).expect("violations serialize");
            InvalidBars::new_err((message, json))
        }
        ChanError::Config { key, .. } => ConfigError::new_err((message, key)),
        ChanError::State(_) => StateError::new_err(message),
    }
}

pub(crate) fn json_error(e: &serde_json::Error) -> PyErr {
    PyRuntimeError::new_err(format!("serializing the document: {e}"))
}

/// `None` → defaults; otherwise a JSON object of overrides in sections.
pub(crate) fn engine_config(config: Option<&str>) -> PyResult<EngineConfig> {
    let Some(text) = config else {
        return Ok(EngineConfig::default());
    };
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        ConfigError::new_err((
            format!("invalid configuration: config: not a JSON object of overrides: {e}"),
            "config".to_string(),
        ))
    })?;
    EngineConfig::from_json_overrides(&value).map_err(to_py)
}

/// What `obj` is, for an error message: a numpy array's dtype and dimensions, or the type.
fn describe(obj: &Bound<'_, PyAny>) -> String {
    match obj.cast::<PyUntypedArray>() {
        Ok(a) => format!("a {}-dimensional {} array", a.ndim(), a.dtype()),
        Err(_) => match obj.get_type().name() {
            Ok(n) => format!("{n}"),
            Err(_) => "an object of unknown type".into(),
        },
    }
}

/// One column, borrowed read-only (any strides); a wrong type or dtype is a TypeError naming it.
fn column<'py, T: numpy::Element>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    dtype: &str,
) -> PyResult<PyReadonlyArray1<'py, T>> {
    obj.extract::<PyReadonlyArray1<'py, T>>().map_err(|e| {
        let got = describe(obj);
        if e.is_instance_of::<PyTypeError>(obj.py()) {
            PyTypeError::new_err(format!(
                "{name}: expected a 1-dimensional numpy {dtype} array, got {got}"
            ))
        } else {
            // Not a type problem (e.g. the array is borrowed mutably elsewhere): keep the
            // error's kind, name the argument.
            let kind = e.get_type(obj.py());
            PyErr::from_type(kind, format!("{name}: {}", e.value(obj.py())))
        }
    })
}

/// Copies the six columns into bars (under the GIL: the arrays are Python objects).
fn bars_of(
    time: &Bound<'_, PyAny>,
    open: &Bound<'_, PyAny>,
    high: &Bound<'_, PyAny>,
    low: &Bound<'_, PyAny>,
    close: &Bound<'_, PyAny>,
    volume: &Bound<'_, PyAny>,
) -> PyResult<Vec<Bar>> {
    let t = column::<i64>(time, "time", "int64")?;
    let t = t.as_array();
    let mut prices = Vec::with_capacity(5);
    for (name, obj) in [
        ("open", open),
        ("high", high),
        ("low", low),
        ("close", close),
        ("volume", volume),
    ] {
        let a = column::<f64>(obj, name, "float64")?;
        if a.len() != t.len() {
            return Err(PyValueError::new_err(format!(
                "{name}: {} values, but time has {}: every column needs one value per bar",
                a.len(),
                t.len()
            )));
        }
        prices.push(a);
    }
    let [o, h, l, c, v] = [0, 1, 2, 3, 4].map(|i| prices[i].as_array());
    Ok((0..t.len())
        .map(|i| Bar::new(t[i], o[i], h[i], l[i], c[i], v[i]))
        .collect())
}

/// Analyzes a whole series. `time`: numpy int64 epoch milliseconds; the others numpy float64;
/// `config`: `None` or a JSON object of overrides. The GIL is released while it runs.
#[pyfunction]
#[pyo3(signature = (time, open, high, low, close, volume, config=None, with_macd=false))]
#[allow(clippy::too_many_arguments)]
fn analyze(
    py: Python<'_>,
    time: &Bound<'_, PyAny>,
    open: &Bound<'_, PyAny>,
    high: &Bound<'_, PyAny>,
    low: &Bound<'_, PyAny>,
    close: &Bound<'_, PyAny>,
    volume: &Bound<'_, PyAny>,
    config: Option<&str>,
    with_macd: bool,
) -> PyResult<Analysis> {
    let cfg = engine_config(config)?;
    let bars = bars_of(time, open, high, low, close, volume)?;
    let inner = py
        .detach(|| chan_core::analyze(&bars, &cfg, with_macd))
        .map_err(to_py)?;
    Ok(Analysis::batch(inner))
}

#[pymodule]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(analyze, m)?)?;
    m.add_class::<Analysis>()?;
    m.add_class::<results::Degree>()?;
    m.add_class::<Session>()?;
    m.add_class::<Update>()?;
    m.add_class::<results::Point>()?;
    m.add_class::<results::Fractal>()?;
    m.add_class::<results::Pen>()?;
    m.add_class::<results::Segment>()?;
    m.add_class::<results::Pivot>()?;
    m.add_class::<results::Signal>()?;
    m.add_class::<results::Repair>()?;
    m.add_class::<results::MacdPoint>()?;
    m.add_class::<results::Macd>()?;
    m.add_class::<results::Splice>()?;
    m.add_class::<results::DegreeUpdate>()?;
    m.add_class::<results::Tail>()?;
    m.add("InvalidBars", py.get_type::<InvalidBars>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("StateError", py.get_type::<StateError>())?;
    Ok(())
}
