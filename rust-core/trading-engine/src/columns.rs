//! Which column holds which bar field: the alias table `config/columns.yaml` (the one list both
//! loaders read), the user's `--columns field=name` mappings over it, and the rules of
//! `docs/DATA.md` ("Columns") — names matched after normalising, two columns for one field
//! refused, volume optional.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::csv_input::LoadError;

/// A bar field a column can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Time,
    Open,
    High,
    Low,
    Close,
    Volume,
}

impl Field {
    /// In the order of `Bar::new`'s arguments.
    pub const ALL: [Field; 6] = [
        Field::Time,
        Field::Open,
        Field::High,
        Field::Low,
        Field::Close,
        Field::Volume,
    ];

    /// The field's name (as in the engines' violations and `--columns`).
    pub fn name(self) -> &'static str {
        match self {
            Field::Time => "time",
            Field::Open => "open",
            Field::High => "high",
            Field::Low => "low",
            Field::Close => "close",
            Field::Volume => "volume",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Field {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Field::ALL
            .into_iter()
            .find(|f| f.name() == s.trim())
            .ok_or_else(|| {
                format!("unknown field {s:?} (one of time, open, high, low, close, volume)")
            })
    }
}

/// One `--columns` mapping: this field is in the column of this name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub field: Field,
    pub column: String,
}

/// Parses `field=name[,field=name...]` (the value of one `--columns`).
pub fn parse_mappings(s: &str) -> Result<Vec<Mapping>, String> {
    s.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (field, column) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected field=column"))?;
            Ok(Mapping {
                field: field.parse()?,
                column: column.trim().to_owned(),
            })
        })
        .collect()
}

/// The shape of `config/columns.yaml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasFile {
    time: Vec<String>,
    open: Vec<String>,
    high: Vec<String>,
    low: Vec<String>,
    close: Vec<String>,
    volume: Vec<String>,
    ignored: Vec<String>,
}

/// What a normalised column name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alias {
    Field(Field),
    /// Known and not read unless mapped (`Adj Close`, amounts, codes).
    Ignored,
}

/// The alias table, built once from the file compiled into the binary.
fn aliases() -> &'static HashMap<String, Alias> {
    static TABLE: OnceLock<HashMap<String, Alias>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let file: AliasFile = serde_yaml_ng::from_str(include_str!("../../../config/columns.yaml"))
            .expect("config/columns.yaml has the shape of AliasFile (tested)");
        let lists = [
            (Alias::Field(Field::Time), file.time),
            (Alias::Field(Field::Open), file.open),
            (Alias::Field(Field::High), file.high),
            (Alias::Field(Field::Low), file.low),
            (Alias::Field(Field::Close), file.close),
            (Alias::Field(Field::Volume), file.volume),
            (Alias::Ignored, file.ignored),
        ];
        let mut table = HashMap::new();
        for (alias, names) in lists {
            for name in names {
                let previous = table.insert(normalise(&name), alias);
                // One name, one meaning: a table that says otherwise is a bug (tested).
                assert!(
                    previous.is_none_or(|p| p == alias),
                    "config/columns.yaml: {name:?} is listed twice with different meanings"
                );
            }
        }
        table
    })
}

/// A column name as the table compares it: trimmed, case-folded, without whitespace,
/// underscores or hyphens (`Adj Close` = `adj_close` = `adjclose`).
pub fn normalise(name: &str) -> String {
    name.trim()
        .chars()
        .filter(|c| !(c.is_whitespace() || *c == '_' || *c == '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Where each field is: its column's index in the header (`volume` may be absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMap {
    /// Indexed like [`Field::ALL`].
    pub at: [Option<usize>; 6],
}

impl ColumnMap {
    pub fn get(&self, f: Field) -> Option<usize> {
        self.at[f as usize]
    }
}

/// Finds each field's column in `header`: the `mappings` first (they win over the table), then
/// the alias table. Every field but volume must be found; two columns for one field are refused.
pub fn map_columns(header: &[&str], mappings: &[Mapping]) -> Result<ColumnMap, LoadError> {
    let names: Vec<String> = header.iter().map(|h| normalise(h)).collect();
    let listed = || header.join(", ");
    let mut at: [Option<usize>; 6] = [None; 6];
    let mut mapped = [false; 6];
    let mut claimed = vec![false; header.len()];
    for m in mappings {
        let wanted = normalise(&m.column);
        let mut found = names.iter().enumerate().filter(|(_, n)| **n == wanted);
        let Some((i, _)) = found.next() else {
            return Err(LoadError::ColumnUnknown {
                field: m.field,
                name: m.column.clone(),
                columns: listed(),
            });
        };
        if let Some((j, _)) = found.next() {
            return Err(LoadError::ColumnAmbiguous {
                field: m.field,
                first: header[i].to_owned(),
                second: header[j].to_owned(),
            });
        }
        if mapped[m.field as usize] {
            return Err(LoadError::ColumnAmbiguous {
                field: m.field,
                first: header[at[m.field as usize].unwrap_or(i)].to_owned(),
                second: header[i].to_owned(),
            });
        }
        at[m.field as usize] = Some(i);
        mapped[m.field as usize] = true;
        claimed[i] = true;
    }
    let table = aliases();
    for (i, name) in names.iter().enumerate() {
        if claimed[i] {
            continue;
        }
        let Some(Alias::Field(field)) = table.get(name.as_str()) else {
            continue;
        };
        let k = *field as usize;
        if mapped[k] {
            // The user chose this field's column: other candidates are not read.
            continue;
        }
        if let Some(j) = at[k] {
            return Err(LoadError::ColumnAmbiguous {
                field: *field,
                first: header[j].to_owned(),
                second: header[i].to_owned(),
            });
        }
        at[k] = Some(i);
    }
    for f in Field::ALL {
        if f != Field::Volume && at[f as usize].is_none() {
            return Err(LoadError::ColumnMissing {
                field: f,
                columns: listed(),
            });
        }
    }
    Ok(ColumnMap { at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(header: &str, mappings: &str) -> Result<ColumnMap, String> {
        let h: Vec<&str> = header.split(',').collect();
        map_columns(&h, &parse_mappings(mappings).unwrap()).map_err(|e| e.rule().to_owned())
    }

    #[test]
    fn the_table_parses_with_one_meaning_per_name() {
        let t = aliases();
        assert_eq!(t.get("adjclose"), Some(&Alias::Ignored));
        assert_eq!(t.get("tradedate"), Some(&Alias::Field(Field::Time)));
        assert_eq!(t.get("成交量"), Some(&Alias::Field(Field::Volume)));
    }

    #[test]
    fn exports_map_to_fields() {
        let yahoo = map("Date,Open,High,Low,Close,Adj Close,Volume", "").unwrap();
        assert_eq!(
            yahoo.at,
            [Some(0), Some(1), Some(2), Some(3), Some(4), Some(6)]
        );
        let akshare = map("日期,开盘,收盘,最高,最低,成交量,成交额", "").unwrap();
        assert_eq!(
            akshare.at,
            [Some(0), Some(1), Some(3), Some(4), Some(2), Some(5)]
        );
        let tushare = map(
            "ts_code,trade_date,open,high,low,close,pre_close,vol,amount",
            "",
        )
        .unwrap();
        assert_eq!(
            tushare.at,
            [Some(1), Some(2), Some(3), Some(4), Some(5), Some(7)]
        );
        let spaced = map(" TIME , Open_ , h,L,c ", "").unwrap();
        assert_eq!(
            spaced.at,
            [Some(0), Some(1), Some(2), Some(3), Some(4), None]
        );
    }

    #[test]
    fn mappings_win_over_the_table() {
        let m = map(
            "Date,Open,High,Low,Close,Adj Close,Volume",
            "close=adj_close",
        )
        .unwrap();
        assert_eq!(m.get(Field::Close), Some(5));
        let m = map("stamp,open,high,low,close,qty", "time=stamp, volume=qty").unwrap();
        assert_eq!(m.get(Field::Time), Some(0));
        assert_eq!(m.get(Field::Volume), Some(5));
        // A mapped field ignores the table's other candidates.
        let m = map("time,date,open,high,low,close", "time=date").unwrap();
        assert_eq!(m.get(Field::Time), Some(1));
    }

    #[test]
    fn bad_headers_name_the_rule() {
        assert_eq!(
            map("time,date,open,high,low,close", "").unwrap_err(),
            "column_ambiguous"
        );
        assert_eq!(
            map("time,open,high,low,close,close", "").unwrap_err(),
            "column_ambiguous"
        );
        assert_eq!(map("time,open,high,low", "").unwrap_err(), "column_missing");
        assert_eq!(
            map("time,open,high,low,close", "volume=qty").unwrap_err(),
            "column_unknown"
        );
        assert!(parse_mappings("colour=red").is_err());
        assert!(parse_mappings("time").is_err());
    }
}
