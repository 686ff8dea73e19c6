//! Go-compatible string helpers: `strconv.Quote`, `unicode.IsSpace`/`IsLetter`/`IsDigit`.
//!
//! BuildKit's AST dump and lexer are defined in terms of Go's standard library; matching its
//! output byte for byte needs the same character classes.

use unicode_general_category::{GeneralCategory as Gc, get_general_category};

/// Go's `unicode.IsSpace`.
pub fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{85}' | '\u{A0}'
    ) || (c as u32 > 0xFF && c.is_whitespace())
}

/// Go's `unicode.IsLetter` (general category L*).
pub fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    matches!(
        get_general_category(c),
        Gc::UppercaseLetter
            | Gc::LowercaseLetter
            | Gc::TitlecaseLetter
            | Gc::ModifierLetter
            | Gc::OtherLetter
    )
}

/// Go's `unicode.IsDigit` (general category Nd).
pub fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    get_general_category(c) == Gc::DecimalNumber
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and U+0020.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !matches!(
        get_general_category(c),
        Gc::Control
            | Gc::Format
            | Gc::PrivateUse
            | Gc::Surrogate
            | Gc::Unassigned
            | Gc::SpaceSeparator
            | Gc::LineSeparator
            | Gc::ParagraphSeparator
    )
}

/// Go's `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_print(c) => out.push(c),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0B}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7F => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Go's `strings.TrimSpace`.
pub fn trim_space(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Go's `bytes.TrimLeftFunc(s, unicode.IsSpace)`.
pub fn trim_left_space(s: &str) -> &str {
    s.trim_start_matches(is_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go() {
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("\u{0}\u{7f}"), r#""\x00\x7f""#);
        assert_eq!(quote("♥ \u{a0}\u{200b}"), r#""♥ \u00a0\u200b""#);
        assert_eq!(quote("\t\n"), r#""\t\n""#);
    }
}
