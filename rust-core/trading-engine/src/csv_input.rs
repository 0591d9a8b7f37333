//! Reads bars from a delimited text file by the rules of `docs/DATA.md`: the delimiter and the
//! encoding detected, the columns found through the alias table (`columns`), the times read by
//! the time rules (`times`), a newest-first file reversed. Parquet is refused (the Python CLI
//! reads it). Every error is a [`LoadError`] naming its rule, field and file line.

use std::fmt;
use std::path::Path;

use chan_core::Bar;

use crate::columns::{map_columns, ColumnMap, Field, Mapping};
use crate::times::{self, Moment, TimeUnit, Zone, ZoneGap, ZoneName};

/// How to read a file: the user's `--columns`, `--time-unit` and `--tz`.
#[derive(Debug, Clone)]
pub struct Options {
    pub mappings: Vec<Mapping>,
    pub time_unit: Option<TimeUnit>,
    pub tz: ZoneName,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mappings: Vec::new(),
            time_unit: None,
            tz: ZoneName::utc(),
        }
    }
}

/// The bars of a file, oldest first, with where each came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub bars: Vec<Bar>,
    /// The file line (1-based; the header is line 1) of each bar.
    pub lines: Vec<u32>,
    /// One-line notices for stderr (volume absent, the epoch unit found, the file reversed...).
    pub notices: Vec<String>,
}

impl Loaded {
    /// The file line of bar `i`.
    pub fn line(&self, i: usize) -> u32 {
        self.lines[i]
    }
}

/// Why a file could not be read: each variant is one rule of `docs/DATA.md`. The contract with
/// the Python loader is the rule, the field and the line ([`LoadError::rule`],
/// [`LoadError::field`], [`LoadError::line`]), not the words.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// A Parquet file (by its extension or its `PAR1` magic): read by `trading-system` only.
    #[error("this is a Parquet file, which trading-engine does not read; analyze it with `trading-system analyze {path}` (or export it as CSV)")]
    Parquet { path: String },
    /// Neither UTF-8 nor GB18030 (GBK) text.
    #[error("the file is neither UTF-8 nor GB18030/GBK text (first bad byte at offset {offset})")]
    Encoding { offset: usize },
    /// No column for a required field.
    #[error("no column for {field} (columns: {columns}); map one with --columns {field}=NAME")]
    ColumnMissing { field: Field, columns: String },
    /// Two columns for one field.
    #[error("columns {first:?} and {second:?} both name {field}; keep one, or choose with --columns {field}=NAME")]
    ColumnAmbiguous {
        field: Field,
        first: String,
        second: String,
    },
    /// A `--columns` mapping names a column the header does not have.
    #[error("--columns {field}={name}: no such column (columns: {columns})")]
    ColumnUnknown {
        field: Field,
        name: String,
        columns: String,
    },
    /// The CSV structure is broken (a row of another width, an unclosed quote).
    #[error("{reason}")]
    Row { line: u32, reason: String },
    /// A price or volume that is not a number.
    #[error("not a number: {value:?}")]
    Number {
        line: u32,
        field: Field,
        value: String,
    },
    /// A time that no form of the table reads.
    #[error("not a time: {value:?}; expected an ISO date or date-time (2025-06-09, 2025/06/09, 2025-06-09 09:31:00[+08:00]), YYYYMMDD or an epoch number{}", unit_hint(.unit))]
    TimeUnparseable {
        line: u32,
        value: String,
        unit: Option<TimeUnit>,
    },
    /// A number of the time column whose reading differs from the column's (its first value's),
    /// or that fits no reading at all.
    #[error("{value} {}; a number column is read one way, by magnitude, in 1971..2100 (say what it is with --time-unit s|ms|us|ns|date)", unit_problem(.fits, .column))]
    TimeUnit {
        line: u32,
        value: i64,
        /// What this value alone reads as.
        fits: Option<TimeUnit>,
        /// What the column's first value reads as.
        column: Option<TimeUnit>,
    },
    /// A time outside the engines' years 1..9999.
    #[error("{value:?}{} is outside the years 1..9999", unit_suffix(.unit))]
    TimeRange {
        line: u32,
        value: String,
        unit: Option<TimeUnit>,
    },
    /// A wall time that the zone skips or repeats.
    #[error(
        "{value:?} {gap} in {tz} (a clock change); write the offset (+08:00) or use another --tz"
    )]
    TimeZone {
        line: u32,
        value: String,
        tz: ZoneName,
        gap: ZoneGap,
    },
}

// The three helpers below take references: thiserror hands a message's fields over that way.
#[allow(clippy::ref_option, clippy::trivially_copy_pass_by_ref)]
fn unit_hint(unit: &Option<TimeUnit>) -> String {
    match unit {
        Some(u) => format!(" (--time-unit {} reads every value as {u})", u.name()),
        None => " (or say what it is with --time-unit, --tz)".into(),
    }
}

#[allow(clippy::ref_option, clippy::trivially_copy_pass_by_ref)]
fn unit_suffix(unit: &Option<TimeUnit>) -> String {
    unit.map(|u| format!(" read as {u}")).unwrap_or_default()
}

#[allow(clippy::ref_option, clippy::trivially_copy_pass_by_ref)]
fn unit_problem(fits: &Option<TimeUnit>, column: &Option<TimeUnit>) -> String {
    match (fits, column) {
        (None, _) => {
            "is no date or epoch time in 1971..2100 in any unit (s, ms, us, ns, YYYYMMDD)".into()
        }
        (Some(f), Some(c)) => format!("reads as {f} but the column's first value as {c}"),
        (Some(f), None) => format!("reads as {f} but the column's first value as nothing"),
    }
}

impl LoadError {
    /// The rule's stable name (the same in the Python loader; `docs/DATA.md`, "Errors").
    pub fn rule(&self) -> &'static str {
        match self {
            LoadError::Parquet { .. } => "parquet_unsupported",
            LoadError::Encoding { .. } => "encoding",
            LoadError::ColumnMissing { .. } => "column_missing",
            LoadError::ColumnAmbiguous { .. } => "column_ambiguous",
            LoadError::ColumnUnknown { .. } => "column_unknown",
            LoadError::Row { .. } => "row_shape",
            LoadError::Number { .. } => "number",
            LoadError::TimeUnparseable { .. } => "time_unparseable",
            LoadError::TimeUnit { .. } => "time_unit",
            LoadError::TimeRange { .. } => "time_range",
            LoadError::TimeZone { .. } => "time_zone",
        }
    }

    /// The field at fault, when the rule concerns one.
    pub fn field(&self) -> Option<Field> {
        match self {
            LoadError::ColumnMissing { field, .. }
            | LoadError::ColumnAmbiguous { field, .. }
            | LoadError::ColumnUnknown { field, .. }
            | LoadError::Number { field, .. } => Some(*field),
            LoadError::TimeUnparseable { .. }
            | LoadError::TimeUnit { .. }
            | LoadError::TimeRange { .. }
            | LoadError::TimeZone { .. } => Some(Field::Time),
            LoadError::Parquet { .. } | LoadError::Encoding { .. } | LoadError::Row { .. } => None,
        }
    }

    /// The file line at fault (1-based; the header is line 1), when there is one.
    pub fn line(&self) -> Option<u32> {
        match self {
            LoadError::ColumnMissing { .. }
            | LoadError::ColumnAmbiguous { .. }
            | LoadError::ColumnUnknown { .. } => Some(1),
            LoadError::Row { line, .. }
            | LoadError::Number { line, .. }
            | LoadError::TimeUnparseable { line, .. }
            | LoadError::TimeUnit { line, .. }
            | LoadError::TimeRange { line, .. }
            | LoadError::TimeZone { line, .. } => Some(*line),
            LoadError::Parquet { .. } | LoadError::Encoding { .. } => None,
        }
    }

    /// The error as the CLI prints it: `line N: message [field F, rule R]`.
    pub fn located(&self) -> Located<'_> {
        Located(self)
    }
}

/// [`LoadError`] with its line, field and rule around the message.
pub struct Located<'a>(&'a LoadError);

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        if let Some(line) = e.line() {
            write!(f, "line {line}: ")?;
        }
        write!(f, "{e} [")?;
        if let Some(field) = e.field() {
            write!(f, "field {field}, ")?;
        }
        write!(f, "rule {}]", e.rule())
    }
}

/// Whether `path` is a Parquet file: by its extension, or by the magic of its first bytes.
pub fn is_parquet(path: &Path, head: &[u8]) -> bool {
    let by_name = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"));
    by_name || head.starts_with(b"PAR1")
}

/// The text of a file: UTF-8 with its BOM removed, or else GB18030 (a superset of GBK)
/// decoded to UTF-8; the second value says whether it was decoded.
pub fn decode(bytes: &[u8]) -> Result<(std::borrow::Cow<'_, [u8]>, bool), LoadError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(_) => Ok((std::borrow::Cow::Borrowed(bytes), false)),
        Err(utf8) => {
            match encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(bytes) {
                Some(text) => Ok((
                    std::borrow::Cow::Owned(text.into_owned().into_bytes()),
                    true,
                )),
                None => Err(LoadError::Encoding {
                    offset: utf8.valid_up_to(),
                }),
            }
        }
    }
}

/// The delimiter of a file: the one of `,` `;` tab `|` its header line holds most often (ties
/// in that order); `,` when it holds none (a one-column file, refused for its columns).
pub fn delimiter(text: &[u8]) -> u8 {
    let header = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut best = (b',', 0usize);
    for d in [b',', b';', b'\t', b'|'] {
        // One line: a byte-counting crate would gain nothing here.
        #[allow(clippy::naive_bytecount)]
        let n = header.iter().filter(|b| **b == d).count();
        if n > best.1 {
            best = (d, n);
        }
    }
    best.0
}

/// Reads the bars of a file (see the module documentation).
pub fn read_file(path: &Path, options: &Options) -> Result<Loaded, ReadError> {
    if is_parquet(path, b"") {
        return Err(ReadError::Load(LoadError::Parquet {
            path: path.display().to_string(),
        }));
    }
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let content = Content::of(&file).map_err(ReadError::Io)?;
    if is_parquet(path, &content) {
        return Err(ReadError::Load(LoadError::Parquet {
            path: path.display().to_string(),
        }));
    }
    read_bytes(&content, options).map_err(ReadError::Load)
}

/// A file's bytes: mapped when it is a regular file (read in place: no copy into fresh memory,
/// whose first touch of each page costs more than parsing it), else read.
enum Content {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl Content {
    fn of(file: &std::fs::File) -> std::io::Result<Self> {
        let meta = file.metadata()?;
        if meta.is_file() && meta.len() > 0 {
            // SAFETY: the map is read while this process runs; the file must not be truncated
            // or rewritten meanwhile (as for any reader of a file being written, the bars
            // would be wrong; a truncation would end the process with SIGBUS). A file handed
            // to `analyze` is an export at rest.
            #[allow(unsafe_code)]
            if let Ok(map) = unsafe { memmap2::Mmap::map(file) } {
                return Ok(Content::Mapped(map));
            }
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut &*file, &mut bytes)?;
        Ok(Content::Read(bytes))
    }
}

impl std::ops::Deref for Content {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Content::Mapped(m) => m,
            Content::Read(v) => v,
        }
    }
}

/// A file that could not be opened, or whose content breaks a rule.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Io(std::io::Error),
    #[error("{}", .0.located())]
    Load(LoadError),
}

/// Reads the bars of a file's bytes (see the module documentation).
pub fn read_bytes(raw: &[u8], options: &Options) -> Result<Loaded, LoadError> {
    let (text, decoded) = decode(raw)?;
    let mut notices = Vec::new();
    if decoded {
        notices.push("the file is not UTF-8: read as GB18030 (GBK)".to_owned());
    }
    // Cells are trimmed one by one as they are read (`Reader::cell`): trimming whole records
    // would rebuild every record, ignored columns too.
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter(&text))
        .from_reader(&text[..]);
    let header = rdr.byte_headers().map_err(|e| row_error(&e, 1))?.clone();
    // The text is UTF-8 by now, so every header cell is too.
    let names: Vec<&str> = header
        .iter()
        .map(|h| std::str::from_utf8(h).unwrap_or_default().trim())
        .collect();
    let map = map_columns(&names, &options.mappings)?;
    if map.get(Field::Volume).is_none() {
        notices.push("no volume column: volume is 0 for every bar".to_owned());
    }
    let mut reader = Reader::new(map, options, expected_rows(&text));
    let mut rec = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as u32);
                return Err(row_error(&e, line));
            }
        }
        let line = rec.position().map_or(0, |p| p.line() as u32);
        reader.row(&rec, line)?;
    }
    let mut loaded = reader.finish()?;
    notices.append(&mut loaded.notices);
    loaded.notices = notices;
    Ok(loaded)
}

/// About how many rows a text holds, from the length of its first lines (a capacity hint:
/// a file of longer rows further on only leaves room unused, of shorter rows grows the lists).
fn expected_rows(text: &[u8]) -> usize {
    let sample = &text[..text.len().min(1 << 16)];
    // 64 KiB: a byte-counting crate would gain nothing here.
    #[allow(clippy::naive_bytecount)]
    let lines = sample.iter().filter(|b| **b == b'\n').count().max(1);
    let rows = text.len() * lines / sample.len().max(1);
    // Some room for rows a little shorter than the first ones.
    rows + rows / 16 + 16
}

fn row_error(e: &csv::Error, line: u32) -> LoadError {
    let reason = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        _ => e.to_string(),
    };
    LoadError::Row { line, reason }
}

/// The state of one file's reading: bars with their times as written, until the time column
/// is known whole.
struct Reader<'a> {
    map: ColumnMap,
    options: &'a Options,
    bars: Vec<Bar>,
    lines: Vec<u32>,
    /// How each bar's time was written; its value is in `bars[i].time` until `finish`.
    kinds: Vec<Written>,
    /// The first number that is no `YYYYMMDD` date (the offending row if the column is text).
    first_non_date: Option<usize>,
    /// The first text time (then the column is not a number column).
    first_text: Option<usize>,
    days: times::DayCache,
}

/// How a time was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// An integral number (its value in `Bar::time`).
    Number,
    /// Text with an offset (the instant in `Bar::time`).
    Instant,
    /// Text without an offset (the wall time in `Bar::time`).
    Wall,
}

impl<'a> Reader<'a> {
    fn new(map: ColumnMap, options: &'a Options, rows: usize) -> Self {
        let bars = Vec::with_capacity(rows);
        // A long file's bars are megabytes written once: huge pages fault 512 times less.
        chan_core::memory::prefer_huge_pages(&bars);
        Self {
            map,
            options,
            bars,
            lines: Vec::with_capacity(rows),
            kinds: Vec::with_capacity(rows),
            first_non_date: None,
            first_text: None,
            days: times::DayCache::default(),
        }
    }

    fn cell<'r>(&self, rec: &'r csv::ByteRecord, f: Field) -> &'r [u8] {
        self.map
            .get(f)
            .and_then(|i| rec.get(i))
            .unwrap_or_default()
            .trim_ascii()
    }

    fn row(&mut self, rec: &csv::ByteRecord, line: u32) -> Result<(), LoadError> {
        let i = self.bars.len();
        let t = self.cell(rec, Field::Time);
        let given = self.options.time_unit;
        // Four digits and a date separator are text; anything else may be a number.
        let dated =
            t.len() > 4 && t[..4].iter().all(u8::is_ascii_digit) && matches!(t[4], b'-' | b'/');
        let number = if dated { None } else { times::integral(t) };
        let (written, time) = if let Some(v) = number {
            if given.is_none() && TimeUnit::fitting(v) != Some(TimeUnit::Date) {
                if self.first_text.is_some() {
                    // A text column: no text form reads a number that is no date.
                    return Err(LoadError::TimeUnparseable {
                        line,
                        value: String::from_utf8_lossy(t).into_owned(),
                        unit: None,
                    });
                }
                self.first_non_date.get_or_insert(i);
            }
            (Written::Number, v)
        } else {
            let parsed = if given.is_some() {
                None
            } else {
                times::parse_text_cached(t, &mut self.days)
            };
            match parsed {
                Some(Moment::Instant(ms)) => (Written::Instant, ms),
                Some(Moment::Wall(ms)) => (Written::Wall, ms),
                None => {
                    // A text column: an earlier number that is no date is the first offender.
                    // A value no column reads (missing, a fraction, a number beyond 64 bits)
                    // names its own row instead (docs/DATA.md, "Times").
                    if let Some(j) = self.first_non_date.filter(|_| !times::unreadable_number(t)) {
                        return Err(self.unparseable_number(j));
                    }
                    return Err(LoadError::TimeUnparseable {
                        line,
                        value: String::from_utf8_lossy(t).into_owned(),
                        unit: given,
                    });
                }
            }
        };
        if written != Written::Number && self.first_text.is_none() {
            self.first_text = Some(i);
            if let Some(j) = self.first_non_date {
                return Err(self.unparseable_number(j));
            }
        }
        let mut v = [0f64; 5];
        for (k, f) in Field::ALL[1..].iter().enumerate() {
            if *f == Field::Volume && self.map.get(Field::Volume).is_none() {
                continue;
            }
            let s = self.cell(rec, *f);
            v[k] = fast_float2::parse(s).map_err(|_| LoadError::Number {
                line,
                field: *f,
                value: String::from_utf8_lossy(s).into_owned(),
            })?;
        }
        self.bars.push(Bar::new(time, v[0], v[1], v[2], v[3], v[4]));
        self.lines.push(line);
        self.kinds.push(written);
        Ok(())
    }

    /// A number in a text time column that is no `YYYYMMDD` date: no text form reads it.
    fn unparseable_number(&self, i: usize) -> LoadError {
        LoadError::TimeUnparseable {
            line: self.lines[i],
            value: self.bars[i].time.to_string(),
            unit: None,
        }
    }

    /// Gives the time column its reading, places wall times in the zone, checks the range and
    /// puts a newest-first file in order.
    fn finish(mut self) -> Result<Loaded, LoadError> {
        let mut notices = Vec::new();
        let mut zone = Zone::new(self.options.tz.clone());
        let all_numbers = self.first_text.is_none();
        // The reading of the numbers: the unit given, else (a number column) the first value's.
        let given = self.options.time_unit;
        let column_unit = match (given, all_numbers) {
            (Some(u), _) => Some(u),
            (None, true) => self.bars.first().and_then(|b| TimeUnit::fitting(b.time)),
            // A text column: its numbers are dates (checked while reading).
            (None, false) => Some(TimeUnit::Date),
        };
        if given.is_none() && all_numbers && !self.bars.is_empty() {
            if let Some(u) = column_unit {
                notices.push(format!(
                    "the time column holds numbers: read as {u} (say otherwise with --time-unit)"
                ));
            }
        }
        let (lo, hi) = if given.is_some() || !all_numbers {
            (times::ENGINE_START_MS, times::ENGINE_END_MS)
        } else {
            (times::AUTO_START_MS, times::AUTO_END_MS)
        };
        for i in 0..self.bars.len() {
            let line = self.lines[i];
            let written = self.bars[i].time;
            let moment = match self.kinds[i] {
                Written::Instant => Moment::Instant(written),
                Written::Wall => Moment::Wall(written),
                Written::Number => {
                    let read = column_unit.and_then(|u| u.read(written));
                    let fits = given.is_none() && all_numbers;
                    match read {
                        Some(m) if !fits || TimeUnit::fitting(written) == column_unit => m,
                        _ if fits => {
                            return Err(LoadError::TimeUnit {
                                line,
                                value: written,
                                fits: TimeUnit::fitting(written),
                                column: column_unit,
                            })
                        }
                        _ => {
                            return Err(LoadError::TimeRange {
                                line,
                                value: written.to_string(),
                                unit: given,
                            })
                        }
                    }
                }
            };
            let ms = zone.instant(moment).map_err(|gap| LoadError::TimeZone {
                line,
                value: self.written_text(i),
                tz: zone.name().clone(),
                gap,
            })?;
            if !(lo..hi).contains(&ms) {
                // Only text times and given units reach here (a fitting number is in range).
                return Err(LoadError::TimeRange {
                    line,
                    value: self.written_text(i),
                    unit: given,
                });
            }
            self.bars[i].time = ms;
        }
        let n = self.bars.len();
        if n >= 2 && self.bars.windows(2).all(|w| w[0].time > w[1].time) {
            self.bars.reverse();
            self.lines.reverse();
            notices.push(format!(
                "the file is newest first: its {n} bars were reversed (oldest first)"
            ));
        }
        Ok(Loaded {
            bars: self.bars,
            lines: self.lines,
            notices,
        })
    }

    /// Bar `i`'s time as the file wrote it, as far as it is known (for errors).
    fn written_text(&self, i: usize) -> String {
        let t = self.bars[i].time;
        match self.kinds[i] {
            Written::Number => t.to_string(),
            Written::Instant => chan_core::timestamp::format_ms(t),
            Written::Wall => chan_core::timestamp::format_ms(t)
                .trim_end_matches('Z')
                .to_owned(),
        }
    }
}
