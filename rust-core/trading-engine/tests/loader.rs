//! The loader of `trading-engine analyze` on real files of each shape (tests/data, see its
//! SOURCES.md): every good shape gives exactly the bars of its canonical CSV, through the
//! library and through the binary; every bad file gets its rule, field and line and a nonzero
//! exit; a closed pipe ends the run quietly.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chan_core::Bar;
use serde_json::Value;
use trading_engine::columns::{parse_mappings, Field};
use trading_engine::csv_input::{read_file, LoadError, Loaded, Options, ReadError};
use trading_engine::times::TimeUnit;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn engine(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trading-engine"))
        .current_dir(repo())
        .args(args)
        .output()
        .expect("the binary runs")
}

fn load(name: &str, options: &Options) -> Loaded {
    match read_file(&data(name), options) {
        Ok(l) => l,
        Err(e) => panic!("{name}: {e}"),
    }
}

fn load_error(name: &str, options: &Options) -> LoadError {
    match read_file(&data(name), options) {
        Err(ReadError::Load(e)) => e,
        other => panic!("{name}: expected a load error, got {other:?}"),
    }
}

fn with_tz(tz: &str) -> Options {
    Options {
        tz: tz.parse().unwrap(),
        ..Options::default()
    }
}

/// The analysis document of a file as the binary prints it (with MACD: every close is in it).
fn document(name: &str, extra: &[&str]) -> Value {
    let path = data(name);
    let mut args = vec!["analyze", path.to_str().unwrap(), "--with-macd"];
    args.extend_from_slice(extra);
    let out = engine(&args);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_shape_gives_the_canonical_bars() {
    let aapl = load("aapl_canonical.csv", &Options::default());
    assert_eq!(aapl.bars.len(), 40);
    assert!(aapl.notices.is_empty(), "{:?}", aapl.notices);
    // 1998-01-02 at 00:00 UTC.
    assert_eq!(aapl.bars[0].time, 883_699_200_000);
    assert_eq!(
        aapl.bars[0],
        Bar::new(883_699_200_000, 13.63, 16.25, 13.5, 16.25, 6_315_000.0)
    );
    let daily: &[(&str, &[&str])] = &[
        ("aapl_yahoo.csv", &[]),
        ("aapl_akshare.csv", &[]),
        ("aapl_akshare_gbk.csv", &["GB18030"]),
        ("aapl_tushare.csv", &["YYYYMMDD", "reversed"]),
        ("aapl_semicolon.csv", &[]),
        ("aapl.tsv", &[]),
        ("aapl_slashes.txt", &[]),
        ("aapl_newest_first.csv", &["reversed"]),
        ("aapl_bom.csv", &[]),
    ];
    for (name, notices) in daily {
        let l = load(name, &Options::default());
        assert_eq!(l.bars, aapl.bars, "{name}");
        assert_eq!(l.notices.len(), notices.len(), "{name}: {:?}", l.notices);
        for (n, word) in l.notices.iter().zip(notices.iter()) {
            assert!(n.contains(word), "{name}: {n}");
        }
    }
    // Line numbers follow the file: a reversed file's first bar is on its last line.
    let tushare = load("aapl_tushare.csv", &Options::default());
    assert_eq!(tushare.line(0), 41);
    assert_eq!(tushare.line(39), 2);

    let none = load("aapl_no_volume.csv", &Options::default());
    assert_eq!(none.notices.len(), 1);
    assert!(none.notices[0].contains("no volume column"));
    for (a, b) in none.bars.iter().zip(&aapl.bars) {
        assert_eq!(*a, Bar { volume: 0.0, ..*b });
    }

    let btc = load("btc_canonical.csv", &Options::default());
    assert_eq!(btc.bars.len(), 48);
    let intraday: &[(&str, Options, &[&str])] = &[
        ("btc_epoch_s.csv", Options::default(), &["epoch seconds"]),
        (
            "btc_epoch_ns.csv",
            Options::default(),
            &["epoch nanoseconds"],
        ),
        ("btc_offset_0400.csv", Options::default(), &[]),
        // The offset wins over --tz.
        ("btc_offset_0400.csv", with_tz("Asia/Tokyo"), &[]),
        ("btc_naive_shanghai.csv", with_tz("Asia/Shanghai"), &[]),
    ];
    for (name, options, notices) in intraday {
        let l = load(name, options);
        assert_eq!(l.bars, btc.bars, "{name}");
        assert_eq!(l.notices.len(), notices.len(), "{name}: {:?}", l.notices);
        for (n, word) in l.notices.iter().zip(notices.iter()) {
            assert!(n.contains(word), "{name}: {n}");
        }
    }
    // Naive times are wall times in --tz: Shanghai's 06:00 is 22:00 UTC the day before.
    let as_utc = load("btc_naive_shanghai.csv", &Options::default());
    assert_eq!(as_utc.bars[0].time - btc.bars[0].time, 8 * 3_600_000);
}

#[test]
fn the_binary_gives_the_same_document_for_every_shape() {
    let aapl = document("aapl_canonical.csv", &[]);
    assert_eq!(aapl["bars"], 40);
    for name in [
        "aapl_yahoo.csv",
        "aapl_akshare_gbk.csv",
        "aapl_tushare.csv",
        "aapl_semicolon.csv",
        "aapl.tsv",
        "aapl_slashes.txt",
        "aapl_newest_first.csv",
        "aapl_no_volume.csv",
    ] {
        assert_eq!(document(name, &[]), aapl, "{name}");
    }
    let btc = document("btc_canonical.csv", &[]);
    assert_eq!(document("btc_epoch_s.csv", &[]), btc);
    assert_eq!(document("btc_offset_0400.csv", &[]), btc);
    assert_eq!(
        document("btc_naive_shanghai.csv", &["--tz", "Asia/Shanghai"]),
        btc
    );
    // Mapping by hand, and a unit said instead of found.
    let mapped = document(
        "aapl_yahoo.csv",
        &[
            "--columns",
            "time=Date",
            "--columns",
            "volume=Volume,close=Close",
        ],
    );
    assert_eq!(mapped, aapl);
    assert_eq!(document("btc_epoch_s.csv", &["--time-unit", "s"]), btc);
}

#[test]
fn notices_go_to_stderr() {
    let path = data("aapl_tushare.csv");
    let out = engine(&["analyze", path.to_str().unwrap(), "--summary"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("read as YYYYMMDD dates"), "{err}");
    assert!(
        err.contains("newest first: its 40 bars were reversed"),
        "{err}"
    );
    // A daily series prints its dates as dates.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1998-0"), "{text}");
    assert!(!text.contains("T00:00:00"), "{text}");
}

#[test]
fn the_summary_prints_times_in_the_zone() {
    let path = data("btc_naive_shanghai.csv");
    let out = engine(&[
        "analyze",
        path.to_str().unwrap(),
        "--summary",
        "--tz",
        "Asia/Shanghai",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("+08:00"), "{text}");
}

/// Each bad file: its rule, field and line from the library, the same in the binary's message
/// (`line N: ... [field F, rule R]`), exit status 2 and nothing on stdout.
/// A bad file, how it is read, and the rule, field and line it must get ("" rule: none).
type BadCase = (
    &'static str,
    Options,
    &'static str,
    Option<&'static str>,
    Option<u32>,
);

#[test]
fn bad_files_name_rule_field_and_line() {
    let cases: &[BadCase] = &[
        (
            "bad_epoch_mixed_units.csv",
            Options::default(),
            "time_unit",
            Some("time"),
            Some(6),
        ),
        (
            "bad_epoch_no_unit.csv",
            Options::default(),
            "time_unit",
            Some("time"),
            Some(2),
        ),
        (
            "bad_epoch_year_2103.csv",
            Options::default(),
            "time_unit",
            Some("time"),
            Some(8),
        ),
        (
            "bad_duplicate_columns.csv",
            Options::default(),
            "column_ambiguous",
            Some("time"),
            Some(1),
        ),
        (
            "bad_time_row.csv",
            Options::default(),
            "time_unparseable",
            Some("time"),
            Some(7),
        ),
        (
            "aapl.parquet",
            Options::default(),
            "parquet_unsupported",
            None,
            None,
        ),
        // A unit said is taken for every value: seconds said to be dates are no dates, and
        // ISO dates are no numbers.
        (
            "btc_epoch_s.csv",
            Options {
                time_unit: Some(TimeUnit::Date),
                ..Options::default()
            },
            "time_range",
            Some("time"),
            Some(2),
        ),
        (
            "aapl_canonical.csv",
            Options {
                time_unit: Some(TimeUnit::Seconds),
                ..Options::default()
            },
            "time_unparseable",
            Some("time"),
            Some(2),
        ),
        (
            "aapl_yahoo.csv",
            Options {
                mappings: parse_mappings("volume=Turnover").unwrap(),
                ..Options::default()
            },
            "column_unknown",
            Some("volume"),
            Some(1),
        ),
        (
            "aapl_no_volume.csv",
            with_tz("America/New_York"),
            "",
            None,
            None,
        ),
    ];
    for (name, options, rule, field, line) in cases {
        if rule.is_empty() {
            // A control: the zone alone breaks nothing.
            load(name, options);
            continue;
        }
        let e = load_error(name, options);
        assert_eq!(e.rule(), *rule, "{name}: {e}");
        assert_eq!(e.field().map(Field::name), *field, "{name}: {e}");
        assert_eq!(e.line(), *line, "{name}: {e}");
    }

    let binary: &[(&str, &[&str], &str)] = &[
        ("bad_epoch_mixed_units.csv", &[], "line 6: "),
        ("bad_epoch_no_unit.csv", &[], "line 2: "),
        ("bad_epoch_year_2103.csv", &[], "line 8: "),
        ("bad_duplicate_columns.csv", &[], "line 1: "),
        ("bad_time_row.csv", &[], "line 7: "),
        ("aapl.parquet", &[], "trading-system analyze"),
        ("btc_epoch_s.csv", &["--time-unit", "date"], "line 2: "),
    ];
    for (name, extra, words) in binary {
        let path = data(name);
        let mut args = vec!["analyze", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = engine(&args);
        assert_eq!(out.status.code(), Some(2), "{name}: {out:?}");
        assert!(out.stdout.is_empty(), "{name}: no partial result");
        let err = String::from_utf8_lossy(&out.stderr);
        let e = load_error(
            name,
            &Options {
                time_unit: extra.get(1).map(|_| TimeUnit::Date),
                ..Options::default()
            },
        );
        let tag = match e.field() {
            Some(f) => format!("[field {f}, rule {}]", e.rule()),
            None => format!("[rule {}]", e.rule()),
        };
        assert!(err.contains(words), "{name}: {err}");
        assert!(err.contains(&tag), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
    }
    // The hint says how to say what the column is.
    let out = engine(&[
        "analyze",
        data("bad_epoch_mixed_units.csv").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("epoch milliseconds") && err.contains("epoch seconds"),
        "{err}"
    );
    assert!(err.contains("--time-unit"), "{err}");
}

/// A Parquet file under another name is still known by its magic bytes.
#[test]
fn parquet_is_known_by_its_bytes() {
    let dir = std::env::temp_dir().join(format!("trading-engine-loader-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let disguised = dir.join("bars.csv");
    std::fs::copy(data("aapl.parquet"), &disguised).unwrap();
    let out = engine(&["analyze", disguised.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Parquet") && err.contains("trading-system"),
        "{err}"
    );
    assert!(!err.contains("utf-8"), "{err}");
}

/// `--help` says which formats `analyze` reads and which it does not.
#[test]
fn help_names_the_formats() {
    let out = engine(&["analyze", "--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for words in [
        "CSV, TSV or TXT",
        "GBK",
        "Does not read Parquet",
        "trading-system analyze",
    ] {
        assert!(text.contains(words), "{words}: {text}");
    }
}

/// A reader that stops early (`trading-engine analyze big.csv | head`): exit 0, nothing on
/// stderr. The output is made larger than a pipe's buffer so the write does hit the closed pipe.
#[test]
fn a_closed_pipe_ends_quietly() {
    let file = repo().join("tests/data/000001.SH_1d_head1200.csv");
    let args = [
        "analyze",
        file.to_str().unwrap(),
        "--with-macd",
        "--pretty",
        "--set",
        "validation.repair=true",
    ];
    let full = engine(&args);
    assert!(full.status.success(), "{full:?}");
    // Twice a Linux pipe's default buffer (64 KiB): the writer must block, then fail.
    assert!(full.stdout.len() > 2 << 16, "{} bytes", full.stdout.len());
    let mut child = Command::new(env!("CARGO_BIN_EXE_trading-engine"))
        .current_dir(repo())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 100];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    // The pipe's read end is closed here (dropped above); the writer is blocked or soon will be.
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "{err}");
    assert!(head.starts_with(b"{"));
}
