//! Bounded text: what the controller copies from pods and events into a status condition or
//! an event is cut to a fixed length, so that a status patch is never refused for its size
//! (a RUN line of megabytes is part of its failure's message) and the build still reaches
//! Failed (M5).

/// The longest condition message and event note, in bytes.
pub const MESSAGE_LIMIT: usize = 1024;

const MORE: &str = "…";

/// `s` when it is at most `max` bytes; else its start, cut at a character boundary, and `…`,
/// `max` bytes at most in all.
pub fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut keep = max.saturating_sub(MORE.len());
    while !s.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{MORE}", &s[..keep])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_a_char_boundary() {
        assert_eq!(bounded("short", 10), "short");
        assert_eq!(bounded("0123456789", 10), "0123456789");
        assert_eq!(bounded("0123456789ab", 10), "0123456…");
        let s = "é".repeat(1000);
        let b = bounded(&s, MESSAGE_LIMIT);
        assert!(b.len() <= MESSAGE_LIMIT && b.ends_with('…'), "{}", b.len());
        assert!(s.starts_with(b.trim_end_matches('…')));
        let big = "x".repeat(2 << 20);
        assert_eq!(bounded(&big, MESSAGE_LIMIT).len(), MESSAGE_LIMIT);
    }
}
