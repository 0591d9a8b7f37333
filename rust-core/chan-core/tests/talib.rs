//! Spec §2: with `seed: sma` and `histogram_scale: 1`, MACD equals TA-Lib's `MACD` to 1e-9
//! relative, including where values are absent. The reference values were computed by TA-Lib
//! itself (`scripts/make_talib_fixture.py`).

use std::path::Path;

use chan_core::config::MacdSeed;
use chan_core::timestamp::parse_time;
use chan_core::{analyze, Bar, EngineConfig};
use serde_json::Value;

fn data(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn sma_seed_equals_talib() {
    let fixture: Value = serde_json::from_str(&data("tests/data/talib_macd.json")).unwrap();
    let src = fixture["source"].as_str().unwrap();
    let bars: Vec<Bar> = data(src)
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<f64> = l.split(',').skip(1).map(|x| x.parse().unwrap()).collect();
            let t = parse_time(l.split(',').next().unwrap()).unwrap();
            Bar::new(t, f[0], f[1], f[2], f[3], f[4])
        })
        .collect();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 3);
    for case in cases {
        let mut cfg = EngineConfig::default();
        cfg.macd.seed = MacdSeed::Sma;
        cfg.macd.histogram_scale = 1.0;
        cfg.macd.fast_period = case["fast_period"].as_u64().unwrap() as u32;
        cfg.macd.slow_period = case["slow_period"].as_u64().unwrap() as u32;
        cfg.macd.signal_period = case["signal_period"].as_u64().unwrap() as u32;
        let doc = analyze(&bars, &cfg, true).unwrap().document();
        let macd = doc.macd.unwrap();
        for (name, ours) in [
            ("dif", &macd.dif),
            ("dea", &macd.dea),
            ("histogram", &macd.histogram),
        ] {
            let theirs = case[name].as_array().unwrap();
            assert_eq!(ours.len(), theirs.len());
            for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
                match (a, b.as_f64()) {
                    (None, None) => {}
                    (Some(a), Some(b)) => {
                        let scale = a.abs().max(b.abs()).max(1e-300);
                        // Near zero (a histogram crossing) compare absolutely at the data's scale.
                        let tol = 1e-9 * scale.max(1e-6);
                        assert!(
                            (a - b).abs() <= tol,
                            "{name}[{i}] ({case:?}): {a} vs TA-Lib {b}"
                        );
                    }
                    (a, b) => panic!("{name}[{i}]: ours {a:?}, TA-Lib {b:?} (absent on one side)"),
                }
            }
        }
    }
}
