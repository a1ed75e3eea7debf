//! Integer parsing as `malloc.py` gets it: optparse's `type='int'` and Python's `int()`.
//!
//! Invariant: a string is accepted exactly when Python would accept it (within the i64
//! range), and gives the same value; in particular optparse reads `010` as octal 8.

/// Python's `int(text, base)` for base 2, 8, 10 or 16: surrounding whitespace, one sign, an
/// optional matching prefix (`0x`, `0o`, `0b`), and digits with single underscores between them.
pub fn python_int(text: &str, base: u32) -> Option<i64> {
    let t = text.trim();
    let (negative, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let prefix = match base {
        16 => Some("0x"),
        8 => Some("0o"),
        2 => Some("0b"),
        _ => None,
    };
    let mut digits = rest;
    let mut after_prefix = false;
    if let Some(p) = prefix {
        // Bytes, not characters: the prefix is ASCII, and the text may not be.
        if digits
            .as_bytes()
            .get(..2)
            .is_some_and(|b| b.eq_ignore_ascii_case(p.as_bytes()))
        {
            digits = &digits[2..];
            after_prefix = true;
        }
    }
    if digits.is_empty() {
        return None;
    }
    let mut value: i128 = 0;
    let mut prev_underscore = !after_prefix;
    let mut seen_digit = false;
    for ch in digits.chars() {
        if ch == '_' {
            if prev_underscore {
                return None;
            }
            prev_underscore = true;
            continue;
        }
        let d = ch.to_digit(base)?;
        value = value
            .checked_mul(i128::from(base))?
            .checked_add(i128::from(d))?;
        if value > i128::from(i64::MAX) + 1 {
            return None;
        }
        prev_underscore = false;
        seen_digit = true;
    }
    if !seen_digit || prev_underscore {
        return None;
    }
    let value = if negative { -value } else { value };
    i64::try_from(value).ok()
}

/// optparse's `type='int'`: `0x..` is hexadecimal, `0b..` binary, any other leading `0` octal.
pub fn optparse_int(text: &str) -> Option<i64> {
    let head: String = text
        .chars()
        .take(2)
        .collect::<String>()
        .to_ascii_lowercase();
    if head == "0x" {
        python_int(text, 16)
    } else if head == "0b" {
        let rest = &text[2..];
        python_int(if rest.is_empty() { "0" } else { rest }, 2)
    } else if text.starts_with('0') {
        python_int(text, 8)
    } else {
        python_int(text, 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_int_accepts_what_python_accepts() {
        assert_eq!(python_int("10", 10), Some(10));
        assert_eq!(python_int(" 10 ", 10), Some(10));
        assert_eq!(python_int("010", 10), Some(10));
        assert_eq!(python_int("1_000", 10), Some(1000));
        assert_eq!(python_int("-5", 10), Some(-5));
        assert_eq!(python_int("+5", 10), Some(5));
        assert_eq!(python_int("0x_1f", 16), Some(31));
        assert_eq!(python_int("9223372036854775807", 10), Some(i64::MAX));
        assert_eq!(python_int("-9223372036854775808", 10), Some(i64::MIN));
    }

    #[test]
    fn python_int_refuses_what_python_refuses() {
        for bad in [
            "",
            " ",
            "1__0",
            "_1",
            "1_",
            "1.5",
            "ten",
            "--1",
            "0x",
            "9223372036854775808",
        ] {
            assert_eq!(python_int(bad, 10), None, "{bad:?}");
        }
    }

    /// Found by fuzzing (ostep_args): a prefix check sliced inside a character.
    #[test]
    fn a_multibyte_character_after_a_leading_zero_is_refused_not_a_panic() {
        assert_eq!(optparse_int("0\u{e9}x"), None);
        assert_eq!(optparse_int("0\u{fffd}ist10"), None);
        assert_eq!(python_int("\u{e9}", 16), None);
        assert_eq!(python_int("-0\u{e9}", 2), None);
    }

    #[test]
    fn optparse_reads_prefixes() {
        assert_eq!(optparse_int("010"), Some(8));
        assert_eq!(optparse_int("0"), Some(0));
        assert_eq!(optparse_int("08"), None);
        assert_eq!(optparse_int("0x10"), Some(16));
        assert_eq!(optparse_int("0X1f"), Some(31));
        assert_eq!(optparse_int("0b101"), Some(5));
        assert_eq!(optparse_int("0b"), Some(0));
        assert_eq!(optparse_int("0o17"), Some(15));
        assert_eq!(optparse_int("-010"), Some(-10));
        assert_eq!(optparse_int("-0x10"), None);
        assert_eq!(optparse_int("12"), Some(12));
    }
}
