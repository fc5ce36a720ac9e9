//! Small pieces of reading SQL dump text, shared by the readers of dumps:
//! the row counter ([`super::rows`]) and the list of databases a dump
//! creates (`restore::created`). Pure.

/// A byte of an unquoted name (any byte of a multi-byte UTF-8 letter too).
pub fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The dollar-quote tag at the start of `s` (`$$`, `$tag$`), if one is.
pub fn dollar_tag(s: &[u8]) -> Option<Vec<u8>> {
    let body = &s[1..];
    let len = body
        .iter()
        .take_while(|&&c| is_ident_byte(c) && c != b'$')
        .count();
    if body.get(len) != Some(&b'$') || body.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some(s[..len + 2].to_vec())
}

/// `line` without its line ending.
pub fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The MariaDB client's `DELIMITER x` line: `None` when `line` is not one;
/// else the new delimiter (`None` when the line names none).
pub fn delimiter_command(line: &[u8]) -> Option<Option<Vec<u8>>> {
    let text = trim_eol(line).trim_ascii_start();
    let word = text.get(..10)?;
    if !word[..9].eq_ignore_ascii_case(b"DELIMITER") || !word[9].is_ascii_whitespace() {
        return None;
    }
    Some(
        text[10..]
            .split(|b| b.is_ascii_whitespace())
            .find(|w| !w.is_empty())
            .map(<[u8]>::to_vec),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiter_lines() {
        assert_eq!(
            delimiter_command(b"DELIMITER ;;\n"),
            Some(Some(b";;".to_vec()))
        );
        assert_eq!(
            delimiter_command(b"  delimiter\t//\r\n"),
            Some(Some(b"//".to_vec()))
        );
        assert_eq!(delimiter_command(b"DELIMITER \n"), Some(None));
        assert_eq!(delimiter_command(b"DELIMITERS ;;\n"), None);
        assert_eq!(delimiter_command(b"SELECT 1;\n"), None);
    }
}
