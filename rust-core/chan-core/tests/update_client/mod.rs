//! A client of update documents (`Session::update_doc`), written against the JSON only, as a
//! program in another language would: it keeps the final lists, splices each update into them,
//! and rebuilds the analysis document.

use chan_core::{Session, Update};
use serde_json::{json, Map, Value};

const LISTS: [&str; 5] = ["fractals", "pens", "segments", "pivots", "signals"];
const TAIL: [&str; 3] = ["segments", "pivots", "signals"];

pub struct Client {
    with_macd: bool,
    bars: Value,
    merged_bars: Value,
    finals: Map<String, Value>,
    tail: Map<String, Value>,
    last_pen: Value,
    forming_pen: Value,
    /// dif, dea, histogram per bar.
    macd: [Vec<Value>; 3],
    /// Indices of repaired bars.
    repaired: Vec<usize>,
    /// Per higher degree (§13), in order.
    degrees: Vec<DegreeMirror>,
}

/// One higher degree as the client keeps it: its number, final lists and tail.
type DegreeMirror = (Value, Map<String, Value>, Map<String, Value>);

fn array(v: &Value) -> &Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
}

impl Client {
    pub fn new(with_macd: bool) -> Self {
        let empty = |names: &[&str]| names.iter().map(|k| (k.to_string(), json!([]))).collect();
        Self {
            with_macd,
            bars: json!(0),
            merged_bars: json!(0),
            finals: empty(&LISTS),
            tail: empty(&TAIL),
            last_pen: Value::Null,
            forming_pen: Value::Null,
            macd: Default::default(),
            repaired: Vec::new(),
            degrees: Vec::new(),
        }
    }

    /// Applies one update document (parsed from its JSON text).
    pub fn apply(&mut self, u: &Value) {
        let mut keys: Vec<&str> = u.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = [
            "index",
            "replaced",
            "repaired",
            "bars",
            "merged_bars",
            "macd",
            "fractals",
            "pens",
            "segments",
            "pivots",
            "signals",
            "last_pen",
            "forming_pen",
            "tail",
            "degrees",
        ];
        keys.sort_unstable();
        want.sort_unstable();
        assert_eq!(keys, want, "update document fields");
        let index = u["index"].as_u64().unwrap() as usize;
        assert_eq!(u["bars"].as_u64().unwrap() as usize, index + 1);
        self.bars = u["bars"].clone();
        self.merged_bars = u["merged_bars"].clone();
        for name in LISTS {
            let list = self.finals[name].as_array_mut().unwrap();
            let from = u[name]["from"].as_u64().unwrap() as usize;
            assert!(
                from <= list.len(),
                "{name}: from {from} beyond {}",
                list.len()
            );
            list.truncate(from);
            list.extend(array(&u[name]["items"]).iter().cloned());
        }
        self.last_pen = u["last_pen"].clone();
        self.forming_pen = u["forming_pen"].clone();
        if !u["tail"].is_null() {
            for name in TAIL {
                self.tail[name] = u["tail"][name].clone();
            }
        }
        for (series, key) in self.macd.iter_mut().zip(["dif", "dea", "histogram"]) {
            series.truncate(index);
            series.push(u["macd"][key].clone());
        }
        let degrees = array(&u["degrees"]);
        if self.degrees.is_empty() {
            let empty = || TAIL.iter().map(|k| (k.to_string(), json!([]))).collect();
            self.degrees = (degrees.iter())
                .map(|d| (d["degree"].clone(), empty(), empty()))
                .collect();
        }
        assert_eq!(
            degrees.len(),
            self.degrees.len(),
            "one entry per degree, always"
        );
        for (d, (degree, finals, tail)) in degrees.iter().zip(&mut self.degrees) {
            assert_eq!(&d["degree"], degree, "degrees in order");
            for name in TAIL {
                let list = finals[name].as_array_mut().unwrap();
                let from = d[name]["from"].as_u64().unwrap() as usize;
                assert!(
                    from <= list.len(),
                    "degree {degree} {name}: from {from} too far"
                );
                list.truncate(from);
                list.extend(array(&d[name]["items"]).iter().cloned());
                if !d["tail"].is_null() {
                    tail[name] = d["tail"][name].clone();
                }
            }
        }
        self.repaired.retain(|&i| i < index);
        if u["repaired"].as_bool().unwrap() {
            self.repaired.push(index);
        }
    }

    /// The analysis document rebuilt from the updates, without `repairs` and `config` (which an
    /// update does not carry), and the indices of the repaired bars.
    pub fn document(&self) -> (Value, Vec<usize>) {
        let joined = |name: &str| {
            let mut v = array(&self.finals[name]).clone();
            if TAIL.contains(&name) {
                v.extend(array(&self.tail[name]).iter().cloned());
            }
            if name == "pens" && !self.last_pen.is_null() {
                v.push(self.last_pen.clone());
            }
            Value::Array(v)
        };
        let mut d = json!({
            "bars": self.bars,
            "merged_bars": self.merged_bars,
            "fractals": joined("fractals"),
            "pens": joined("pens"),
            "forming_pen": self.forming_pen,
            "segments": joined("segments"),
            "pivots": joined("pivots"),
            "signals": joined("signals"),
        });
        let degrees: Vec<Value> = (self.degrees.iter())
            .map(|(degree, finals, tail)| {
                let mut d = json!({"degree": degree});
                for name in TAIL {
                    let mut v = array(&finals[name]).clone();
                    v.extend(array(&tail[name]).iter().cloned());
                    d[name] = Value::Array(v);
                }
                d
            })
            .collect();
        d["degrees"] = Value::Array(degrees);
        if self.with_macd {
            let [dif, dea, histogram] = self.macd.clone();
            d["macd"] = json!({"dif": dif, "dea": dea, "histogram": histogram});
        }
        (d, self.repaired.clone())
    }
}

/// Splits a full document (as JSON) into what [`Client::document`] rebuilds and the repaired
/// indices.
pub fn comparable(doc: &Value) -> (Value, Vec<usize>) {
    let mut d = doc.clone();
    let o = d.as_object_mut().unwrap();
    o.remove("config");
    let repairs = o.remove("repairs").unwrap();
    let indices = array(&repairs)
        .iter()
        .map(|r| r["index"].as_u64().unwrap() as usize)
        .collect();
    (d, indices)
}

/// Sends `u` (the report of `s`'s latest call) to `client` as JSON text, then checks the client
/// against the session: the tail, last and forming pens and list lengths after every call (cheap),
/// the whole document when `full`.
pub fn step(client: &mut Client, s: &Session, u: &Update, full: bool) -> Result<(), String> {
    let text = serde_json::to_string(&s.update_doc(u)).unwrap();
    client.apply(&serde_json::from_str(&text).unwrap());
    // The session's current tail, rendered whatever the report said.
    let mut all = u.clone();
    all.tail_changed = true;
    let now = serde_json::to_value(s.update_doc(&all)).unwrap();
    let e = s.engine();
    let lengths = [
        e.fractals().len(),
        e.pens().len().saturating_sub(1),
        e.confirmed_segments().len(),
        e.confirmed_pivots().len(),
        e.final_signals().len(),
    ];
    for (name, n) in LISTS.iter().zip(lengths) {
        if array(&client.finals[*name]).len() != n {
            return Err(format!("bar {}: {name}: length differs", u.index));
        }
    }
    for name in TAIL {
        if client.tail[name] != now["tail"][name] {
            return Err(format!("bar {}: tail {name} differs", u.index));
        }
    }
    if client.last_pen != now["last_pen"] || client.forming_pen != now["forming_pen"] {
        return Err(format!("bar {}: last or forming pen differs", u.index));
    }
    if full {
        let want = comparable(&serde_json::to_value(s.document()).unwrap());
        if want != client.document() {
            return Err(format!("bar {}: rebuilt document differs", u.index));
        }
    }
    Ok(())
}
