//! The one rule by which user text (a symbol, a timeframe, a session name, a string
//! configuration value) appears in messages and logs, the same in both engines (`docs/GRPC.md`):
//! at most the first 32 characters, each character outside printable ASCII and each `"` and `\`
//! written as `\u{<hex>}`, then `... (N characters)` when the text was longer.

use std::fmt::Write as _;

/// Characters shown before the text is cut.
pub const SHOWN_CHARS: usize = 32;

/// `text` as messages and logs show it.
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(4 * SHOWN_CHARS) + 24);
    let mut count = 0usize;
    for c in text.chars() {
        if count < SHOWN_CHARS {
            if (' '..='~').contains(&c) && c != '"' && c != '\\' {
                out.push(c);
            } else {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
        count += 1;
    }
    if count > SHOWN_CHARS {
        let _ = write!(out, "... ({count} characters)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_kept() {
        assert_eq!(shown("BTC/USDT"), "BTC/USDT");
        assert_eq!(shown(""), "");
        assert_eq!(shown(&"a".repeat(32)), "a".repeat(32));
    }

    #[test]
    fn escapes_quotes_backslashes_controls_and_non_ascii() {
        assert_eq!(shown("a\"b\\c"), "a\\u{22}b\\u{5c}c");
        assert_eq!(shown("\n\t\u{7f}\0"), "\\u{a}\\u{9}\\u{7f}\\u{0}");
        assert_eq!(shown("é"), "\\u{e9}");
        // Outside the BMP: one code point, one escape (not two UTF-16 halves).
        assert_eq!(shown("x\u{1f600}"), "x\\u{1f600}");
    }

    #[test]
    fn long_text_is_cut_and_counted_in_code_points() {
        assert_eq!(
            shown(&"b".repeat(33)),
            format!("{}... (33 characters)", "b".repeat(32))
        );
        let s = "\u{1f600}".repeat(40);
        assert_eq!(
            shown(&s),
            format!("{}... (40 characters)", "\\u{1f600}".repeat(32))
        );
    }
}
