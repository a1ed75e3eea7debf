//! How messages show input they refuse: a token is shown whole when it is short, and cut with
//! an ellipsis when it is long, so that one bad line of a trace or one bad flag value can never
//! turn an error line into megabytes.
//!
//! Invariant: [`clip`] returns at most [`CLIP_CHARS`] characters of its input, plus `…` when it
//! cut anything, and never splits a character.

use std::borrow::Cow;

/// The most characters of an offending token that a message shows.
pub const CLIP_CHARS: usize = 40;

/// `text` as a message shows it: whole if it has at most [`CLIP_CHARS`] characters, otherwise
/// its first [`CLIP_CHARS`] characters and `…`.
pub fn clip(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(CLIP_CHARS) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!("{}…", &text[..cut])),
    }
}

/// A message with every `'`-quoted token in it clipped (clap quotes the values it refuses).
pub fn clip_quoted(message: &str) -> String {
    message
        .split('\'')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                clip(part)
            } else {
                Cow::Borrowed(part)
            }
        })
        .collect::<Vec<_>>()
        .join("'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tokens_stay_whole_and_long_ones_are_cut_on_a_character() {
        assert_eq!(clip("ten"), "ten");
        let exact = "x".repeat(CLIP_CHARS);
        assert_eq!(clip(&exact), exact);
        let long = "é".repeat(CLIP_CHARS + 1);
        assert_eq!(clip(&long), format!("{}…", "é".repeat(CLIP_CHARS)));
        assert_eq!(
            clip_quoted(&format!("invalid value '{}' for '--x'", "y".repeat(1000))),
            format!("invalid value '{}…' for '--x'", "y".repeat(CLIP_CHARS))
        );
    }
}
