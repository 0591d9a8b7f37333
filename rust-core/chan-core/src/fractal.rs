//! Fractals (分型, spec §4): a merged bar higher (top, 顶分型) or lower (bottom, 底分型) than both
//! neighbours, classified once when the next merged bar is created.

use serde::Serialize;

use crate::kline::{Direction, MergedBars};

/// The kind of a fractal: top (顶分型) or bottom (底分型).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FractalKind {
    Top,
    Bottom,
}

/// Shown as its name in the document (`as_str`); width and alignment apply.
impl std::fmt::Display for FractalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl FractalKind {
    /// `"top"` or `"bottom"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FractalKind::Top => "top",
            FractalKind::Bottom => "bottom",
        }
    }
}

/// A fractal (分型): merged bar `merged` is a top or a bottom; `index` is its extreme raw bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fractal {
    pub kind: FractalKind,
    pub merged: u32,
    pub index: u32,
    pub price: f64,
}

impl Fractal {
    /// A placeholder value.
    pub const EMPTY: Fractal = Fractal {
        kind: FractalKind::Top,
        merged: u32::MAX,
        index: u32::MAX,
        price: f64::NAN,
    };
}

/// Classifies merged bar `n` (n ≥ 1) once bar `n + 1` exists. Adjacent merged bars are strictly
/// up or down from each other, so the creation directions decide it.
#[inline]
pub fn classify(merged: &MergedBars, n: usize) -> Option<Fractal> {
    let (cur, next) = (&merged[n], &merged[n + 1]);
    match (cur.dir, next.dir) {
        (Direction::Up, Direction::Down) => Some(Fractal {
            kind: FractalKind::Top,
            merged: n as u32,
            index: cur.high_bar,
            price: cur.high,
        }),
        (Direction::Down, Direction::Up) => Some(Fractal {
            kind: FractalKind::Bottom,
            merged: n as u32,
            index: cur.low_bar,
            price: cur.low,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kline::{fold_bar, MergedBars};

    #[test]
    fn top_and_bottom() {
        let mut m = MergedBars::new();
        for (i, (h, l)) in [(10.0, 5.0), (12.0, 6.0), (11.0, 4.0), (13.0, 7.0)]
            .into_iter()
            .enumerate()
        {
            fold_bar(&mut m, i as u32, h, l);
        }
        assert_eq!(m.len(), 4);
        assert_eq!(classify(&m, 1).unwrap().kind, FractalKind::Top);
        let b = classify(&m, 2).unwrap();
        assert_eq!(
            (b.kind, b.merged, b.index, b.price),
            (FractalKind::Bottom, 2, 2, 4.0)
        );
    }
}
