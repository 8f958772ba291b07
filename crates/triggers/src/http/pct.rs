//! Percent-decoding shared by route parameters and query strings.

use std::borrow::Cow;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_as_space`).
/// A `%` not followed by two hex digits is kept as it is.
pub(crate) fn decode(s: &str, plus_as_space: bool) -> Cow<'_, [u8]> {
    let bytes = s.as_bytes();
    if !bytes
        .iter()
        .any(|&b| b == b'%' || (plus_as_space && b == b'+'))
    {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_as_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(out)
}

/// Decoded text, or `None` when the decoded bytes are not UTF-8.
pub(crate) fn decode_utf8(s: &str, plus_as_space: bool) -> Option<Cow<'_, str>> {
    match decode(s, plus_as_space) {
        Cow::Borrowed(_) => Some(Cow::Borrowed(s)),
        Cow::Owned(v) => String::from_utf8(v).ok().map(Cow::Owned),
    }
}

/// Decoded text, invalid UTF-8 replaced by U+FFFD.
pub(crate) fn decode_lossy(s: &str, plus_as_space: bool) -> String {
    match decode(s, plus_as_space) {
        Cow::Borrowed(_) => s.to_owned(),
        Cow::Owned(v) => match String::from_utf8(v) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        },
    }
}

/// Whether `raw`, once percent-decoded, equals `literal` (no allocation).
pub(crate) fn eq_decoded(raw: &str, literal: &str) -> bool {
    let raw = raw.as_bytes();
    let mut lit = literal.as_bytes().iter();
    let mut i = 0;
    while i < raw.len() {
        let b = if raw[i] == b'%' {
            match (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    i += 3;
                    h << 4 | l
                }
                _ => {
                    i += 1;
                    b'%'
                }
            }
        } else {
            i += 1;
            raw[i - 1]
        };
        if lit.next() != Some(&b) {
            return false;
        }
    }
    lit.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_keeps_bad_ones() {
        assert_eq!(&*decode("a%20b", false), b"a b");
        assert_eq!(&*decode("a+b", false), b"a+b");
        assert_eq!(&*decode("a+b", true), b"a b");
        assert_eq!(&*decode("100%", false), b"100%");
        assert_eq!(&*decode("%zz%4", false), b"%zz%4");
        assert_eq!(&*decode("%C3%A9", false), "é".as_bytes());
        assert!(matches!(decode("plain", true), Cow::Borrowed(_)));
    }

    #[test]
    fn utf8_and_lossy() {
        assert_eq!(decode_utf8("caf%C3%A9", false).as_deref(), Some("café"));
        assert_eq!(decode_utf8("%FF", false), None);
        assert_eq!(decode_lossy("%FFa", false), "\u{FFFD}a");
    }

    #[test]
    fn compares_decoded_without_allocating() {
        assert!(eq_decoded("abc", "abc"));
        assert!(eq_decoded("%61bc", "abc"));
        assert!(eq_decoded("%61%62%63", "abc"));
        assert!(!eq_decoded("%61b", "abc"));
        assert!(!eq_decoded("abcd", "abc"));
        assert!(!eq_decoded("ABC", "abc"));
        assert!(eq_decoded("%zz", "%zz"));
    }
}
