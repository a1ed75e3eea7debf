//! The text trace format: one operation per line, `a ID SIZE [ALIGN]`, `f ID`, `r ID SIZE`.
//!
//! Invariant: [`TextReader`] yields exactly the operations of the non-blank, non-comment lines,
//! in order, each tagged with its 1-based line number; the first malformed line stops it with
//! an error naming that line. Fields are separated by spaces and tabs only, and numbers are
//! ASCII decimal digits only (no sign), as docs/trace-format.md says. [`write_text`] writes what the reader reads back unchanged.

use std::fmt::Write as _;

use super::{Event, Op, Trace, TraceError, TraceReader, DEFAULT_ALIGN};
use crate::quote::{clip, quoted};

/// What separates fields: spaces and tabs, nothing else (docs/trace-format.md).
const SEPARATORS: [char; 2] = [' ', '\t'];

/// Reads the text format from a string.
#[derive(Debug)]
pub struct TextReader<'a> {
    source: String,
    lines: std::iter::Enumerate<std::str::Lines<'a>>,
}

impl<'a> TextReader<'a> {
    /// A reader over `text`; `source` names it in error messages.
    pub fn new(source: &str, text: &'a str) -> Self {
        TextReader {
            source: source.to_string(),
            lines: text.lines().enumerate(),
        }
    }

    fn parse_line(&self, line: usize, body: &str) -> Result<Op, TraceError> {
        let err = |msg: String| TraceError::new(&self.source, line, msg);
        let mut words = body.split(SEPARATORS).filter(|w| !w.is_empty());
        let kind = words.next().unwrap_or("");
        let fields: Vec<&str> = words.collect();
        let number = |what: &str, text: &str| -> Result<u64, TraceError> {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(format!(
                    "{what} must be a non-negative integer, got {}",
                    quoted(text)
                )));
            }
            text.parse::<u64>()
                .map_err(|_| err(format!("{what} {} does not fit in 64 bits", clip(text))))
        };
        let size = |text: &str| -> Result<usize, TraceError> {
            usize::try_from(number("size", text)?).map_err(|_| {
                err(format!(
                    "size {} does not fit in this machine's address space",
                    clip(text)
                ))
            })
        };
        let arity = |min: usize, max: usize, usage: &str| {
            if fields.len() < min || fields.len() > max {
                Err(err(format!(
                    "expected `{usage}`, got {}",
                    quoted(body.trim_matches(SEPARATORS))
                )))
            } else {
                Ok(())
            }
        };
        match kind {
            "a" => {
                arity(2, 3, "a ID SIZE [ALIGN]")?;
                let align = match fields.get(2) {
                    Some(text) => usize::try_from(number("alignment", text)?)
                        .map_err(|_| err(format!("alignment {} is too large", clip(text))))?,
                    None => DEFAULT_ALIGN,
                };
                Ok(Op::Alloc {
                    id: number("id", fields[0])?,
                    size: size(fields[1])?,
                    align,
                })
            }
            "f" => {
                arity(1, 1, "f ID")?;
                Ok(Op::Free {
                    id: number("id", fields[0])?,
                })
            }
            "r" => {
                arity(2, 2, "r ID SIZE")?;
                Ok(Op::Realloc {
                    id: number("id", fields[0])?,
                    size: size(fields[1])?,
                })
            }
            other => Err(err(format!(
                "unknown operation {} (expected a, f or r)",
                quoted(other)
            ))),
        }
    }
}

impl TraceReader for TextReader<'_> {
    fn source(&self) -> &str {
        &self.source
    }

    fn next_event(&mut self) -> Option<Result<Event, TraceError>> {
        for (index, raw) in self.lines.by_ref() {
            let line = index + 1;
            let body = match raw.find('#') {
                Some(hash) => &raw[..hash],
                None => raw,
            };
            if body.trim_matches(SEPARATORS).is_empty() {
                continue;
            }
            return Some(self.parse_line(line, body).map(|op| Event { op, line }));
        }
        None
    }
}

/// Writes `ops` in the text format, after a comment header of `comments` lines.
pub fn write_text(comments: &[String], ops: &[Op]) -> String {
    let mut out = String::new();
    for c in comments {
        let _ = writeln!(out, "# {c}");
    }
    for op in ops {
        let _ = match *op {
            Op::Alloc { id, size, align } if align == DEFAULT_ALIGN => {
                writeln!(out, "a {id} {size}")
            }
            Op::Alloc { id, size, align } => writeln!(out, "a {id} {size} {align}"),
            Op::Free { id } => writeln!(out, "f {id}"),
            Op::Realloc { id, size } => writeln!(out, "r {id} {size}"),
        };
    }
    out
}

impl Trace {
    /// The trace in the text format (no comments).
    pub fn to_text(&self) -> String {
        let ops: Vec<Op> = self.events.iter().map(|e| e.op).collect();
        write_text(&[], &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<Event>, TraceError> {
        let mut r = TextReader::new("x.trace", text);
        let mut out = Vec::new();
        while let Some(e) = r.next_event() {
            out.push(e?);
        }
        Ok(out)
    }

    #[test]
    fn comments_and_blank_lines_are_skipped_and_lines_counted() {
        let events = read("# header\n\n  a 7 100   # trailing\n\tf 7\nr 9 3\n").unwrap();
        assert_eq!(
            events,
            vec![
                Event {
                    op: Op::Alloc {
                        id: 7,
                        size: 100,
                        align: DEFAULT_ALIGN
                    },
                    line: 3
                },
                Event {
                    op: Op::Free { id: 7 },
                    line: 4
                },
                Event {
                    op: Op::Realloc { id: 9, size: 3 },
                    line: 5
                },
            ]
        );
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let cases = [
            (
                "a 1\n",
                "x.trace:1: expected `a ID SIZE [ALIGN]`, got \"a 1\"",
            ),
            ("\n\nf\n", "x.trace:3: expected `f ID`, got \"f\""),
            (
                "r 1 2 3\n",
                "x.trace:1: expected `r ID SIZE`, got \"r 1 2 3\"",
            ),
            (
                "a x 8\n",
                "x.trace:1: id must be a non-negative integer, got \"x\"",
            ),
            (
                "a 1 -8\n",
                "x.trace:1: size must be a non-negative integer, got \"-8\"",
            ),
            (
                "a 1 8 y\n",
                "x.trace:1: alignment must be a non-negative integer, got \"y\"",
            ),
            (
                "m 1 8\n",
                "x.trace:1: unknown operation \"m\" (expected a, f or r)",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(read(text).unwrap_err().to_string(), want, "{text:?}");
        }
    }

    #[test]
    fn only_ascii_digits_spaces_and_tabs_are_accepted() {
        let cases = [
            (
                "a 1 +8\n",
                "x.trace:1: size must be a non-negative integer, got \"+8\"",
            ),
            (
                "f +1\n",
                "x.trace:1: id must be a non-negative integer, got \"+1\"",
            ),
            (
                "a 1 8 +16\n",
                "x.trace:1: alignment must be a non-negative integer, got \"+16\"",
            ),
            (
                "a 1 \u{0663}\n",
                "x.trace:1: size must be a non-negative integer, got \"\u{0663}\"",
            ),
            // No-break space, em space and ideographic space separate nothing.
            (
                "a\u{a0}1 8\n",
                "x.trace:1: unknown operation \"a\\u{a0}1\" (expected a, f or r)",
            ),
            (
                "a 1\u{2003}8\n",
                "x.trace:1: expected `a ID SIZE [ALIGN]`, got \"a 1\\u{2003}8\"",
            ),
            (
                "\u{3000}\n",
                "x.trace:1: unknown operation \"\\u{3000}\" (expected a, f or r)",
            ),
            (
                "a 1 8\x0b\n",
                "x.trace:1: size must be a non-negative integer, got \"8\\u{b}\"",
            ),
            (
                "a 1 99999999999999999999\n",
                "x.trace:1: size 99999999999999999999 does not fit in 64 bits",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(read(text).unwrap_err().to_string(), want, "{text:?}");
        }
        // Spaces, tabs and CRLF line ends are fine.
        assert_eq!(read("\ta\t1  8 \r\n \t\r\nf 1\r\n").unwrap().len(), 2);
    }

    #[test]
    fn long_tokens_are_clipped_in_messages() {
        let long = "z".repeat(100_000);
        for text in [
            format!("{long} 1 8\n"),
            format!("a 1 {long}\n"),
            format!("a 1 8 {long}\n"),
            format!("a 1 8 16 {long}\n"),
        ] {
            let msg = read(&text).unwrap_err().to_string();
            assert!(msg.len() < 200, "{} bytes: {}", msg.len(), &msg[..200]);
            assert!(msg.contains("zzz…\""), "{msg}");
        }
        let digits = "9".repeat(10_000);
        let msg = read(&format!("a 1 {digits}\n")).unwrap_err().to_string();
        assert!(msg.len() < 200, "{msg}");
    }

    #[test]
    fn writing_then_reading_gives_the_same_ops() {
        let ops = vec![
            Op::Alloc {
                id: 1,
                size: 10,
                align: 8,
            },
            Op::Alloc {
                id: 2,
                size: 20,
                align: 64,
            },
            Op::Realloc { id: 1, size: 30 },
            Op::Free { id: 2 },
        ];
        let text = write_text(&["made by a test".to_string()], &ops);
        let back: Vec<Op> = read(&text).unwrap().into_iter().map(|e| e.op).collect();
        assert_eq!(back, ops);
    }
}
