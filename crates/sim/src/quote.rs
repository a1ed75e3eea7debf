//! How messages show input they refuse: escaped, so that a control character or a line break
//! cannot break the one-line message, and cut with an ellipsis when long, so that one bad line
//! of a trace or one bad flag value can never turn an error line into megabytes.
//!
//! Invariant: [`clip`] and [`quoted`] show at most [`CLIP_CHARS`] characters of escaped text
//! (plus `…` when they cut, and the quotes), never split a character or an escape, and look at
//! no more of their input than they show.

/// The most characters of a refused value, once escaped, that a message shows.
pub const CLIP_CHARS: usize = 40;

/// `text` as a message shows it between single quotes: characters that do not print (control
/// characters, invisible ones) and `\` escaped as Rust's `{:?}` escapes them, and cut after
/// [`CLIP_CHARS`] characters with `…`.
pub fn clip(text: &str) -> String {
    escape(text, false)
}

/// `text` in double quotes, as `{:?}` prints it (with `"` escaped too), cut as [`clip`] cuts.
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", escape(text, true))
}

fn escape(text: &str, double_quotes: bool) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for c in text.chars() {
        let start = out.len();
        if c == '\'' || (c == '"' && !double_quotes) {
            out.push(c);
        } else {
            out.extend(c.escape_debug());
        }
        let n = out[start..].chars().count();
        if shown + n > CLIP_CHARS {
            out.truncate(start);
            out.push('…');
            return out;
        }
        shown += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tokens_stay_whole_and_long_ones_are_cut_on_a_character() {
        assert_eq!(clip("ten"), "ten");
        assert_eq!(quoted("ten"), "\"ten\"");
        let exact = "x".repeat(CLIP_CHARS);
        assert_eq!(clip(&exact), exact);
        let long = "é".repeat(CLIP_CHARS + 1);
        assert_eq!(clip(&long), format!("{}…", "é".repeat(CLIP_CHARS)));
    }

    #[test]
    fn escapes_are_those_of_debug_and_count_as_shown() {
        for text in [
            "a\"b'c",
            "tab\there",
            "nul\0",
            "\u{a0}\u{3000}",
            "back\\slash",
        ] {
            assert_eq!(quoted(text), format!("{text:?}"));
        }
        assert_eq!(clip("a'b\"c\n"), "a'b\"c\\n");
        // Ten escapes of six characters: six fit in forty, and no escape is split.
        let clipped = clip(&"\u{12}".repeat(10));
        assert_eq!(clipped, format!("{}…", "\\u{12}".repeat(6)));
    }
}
