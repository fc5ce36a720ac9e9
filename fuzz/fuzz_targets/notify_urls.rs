//! `NOTIFY_URLS`: any text parses or fails with one line, and no password,
//! login or token ever shows in what is printed of a receiver or an error.
//! The first byte picks the mode: raw text, or an item built around secrets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackshot::notify::target;

/// Marks the secret parts; cut out of the rest of the input.
const PASSWORD: &str = "pw9Qz7Secret";
const LOGIN: &str = "lg4Kx2Login";

const SCHEMES: &[&str] = &[
    "https",
    "http",
    "ntfy",
    "ntfys",
    "gotify",
    "discord",
    "slack",
    "smtp",
    "smtps",
    "telegram",
    "matrix",
    "pushover",
    "teams+https",
    "apprise",
    "apprises",
    "x",
];

fn shown(parsed: &Result<Vec<target::Target>, target::BadTarget>) -> String {
    match parsed {
        Ok(ts) => ts
            .iter()
            .map(|t| format!("{t} {t:?} {}", t.scheme()))
            .collect::<Vec<_>>()
            .join(" "),
        Err(e) => {
            let line = e.to_string();
            assert!(!line.contains('\n'), "an error of more than one line: {line:?}");
            format!("{line} {e:?}")
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if mode % 2 == 0 {
        shown(&target::parse_list(&text));
        return;
    }
    // scheme://LOGIN…:PASSWORD…@rest, the parts split on the first two NULs.
    let clean = text.replace(PASSWORD, "").replace(LOGIN, "");
    let mut parts = clean.splitn(3, '\0');
    // The login and password stay userinfo: without the characters that
    // end it (else they are the host, which is shown).
    let userinfo = |s: &str, also: &[char]| {
        s.replace(|c: char| "/?#\\@".contains(c) || also.contains(&c), "")
    };
    let user = userinfo(parts.next().unwrap_or(""), &[':']);
    let pass = userinfo(parts.next().unwrap_or(""), &[]);
    let host = parts.next().unwrap_or("");
    let scheme = SCHEMES[usize::from(*mode / 2) % SCHEMES.len()];
    let item = format!("{scheme}://{LOGIN}{user}:{PASSWORD}{pass}@{host}");
    let out = shown(&target::parse_list(&item));
    assert!(!out.contains(PASSWORD), "the password shows: {out:?} (from {item:?})");
    assert!(!out.contains(LOGIN), "the login shows: {out:?} (from {item:?})");
});
