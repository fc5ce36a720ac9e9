//! Reading a `NOTIFY_URLS` item as a URL: its parts, decoded, and the
//! masked error line for an item that is wrong.

use url::Url;

use super::{BadTarget, masked};
use crate::env::Secret;

/// The item as it may be shown ([`masked`]), or only its scheme when it is
/// no URL at all, in case a secret sits in the rest (or when its host is
/// a secret: Pushover's user key).
fn mask_raw(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(u) if u.host_str().is_some() && u.scheme() != "pushover" => masked(&u),
        _ => match raw.split_once("://") {
            Some((scheme, _))
                if !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                format!("{scheme}://…")
            }
            _ => "…".into(),
        },
    }
}

/// `s` percent-decoded (a `+` stays a `+`).
pub(super) fn decoded(s: &str) -> String {
    percent_decode(s)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The item's `user:pass@` part, decoded: `None` without a user name.
pub(super) fn auth(u: &Url) -> Option<(String, Secret)> {
    if u.username().is_empty() {
        return None;
    }
    Some((
        decoded(u.username()),
        Secret::new(decoded(u.password().unwrap_or(""))),
    ))
}

/// The values of every `key=` query parameter, each split on commas,
/// trimmed, the empty ones dropped.
pub(super) fn query(u: &Url, key: &str) -> Vec<String> {
    u.query_pairs()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Like [`query`], for every key of `keys` (lowercase), each matched
/// whatever its case: shoutrrr writes `disableTLS`, `deviceID`.
pub(super) fn query_any(u: &Url, keys: &[&str]) -> Vec<String> {
    u.query_pairs()
        .filter(|(k, _)| keys.iter().any(|w| k.eq_ignore_ascii_case(w)))
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether the first `key=` value is `yes`, `true` or `1`.
pub(super) fn yes(u: &Url, key: &str) -> bool {
    query(u, key)
        .first()
        .is_some_and(|v| matches!(v.as_str(), "yes" | "true" | "1"))
}

/// One `NOTIFY_URLS` item read as a URL, for the receiver its scheme names.
pub(super) struct Item<'a> {
    /// The item as written (trimmed).
    pub(super) raw: &'a str,
    /// The item as a URL.
    pub(super) u: Url,
    /// Its path's non-empty segments, decoded.
    pub(super) segments: Vec<String>,
}

impl<'a> Item<'a> {
    /// Reads `raw` (trimmed) as a URL.
    pub(super) fn read(raw: &'a str) -> Result<Item<'a>, BadTarget> {
        let u = Url::parse(raw).map_err(|e| bad(raw, &format!("not a URL ({e})")))?;
        let segments: Vec<String> = u
            .path_segments()
            .map(|s| s.filter(|x| !x.is_empty()).map(decoded).collect())
            .unwrap_or_default();
        Ok(Item { raw, u, segments })
    }

    /// The error for this item: it, masked, and `why`.
    pub(super) fn bad(&self, why: &str) -> BadTarget {
        bad(self.raw, why)
    }

    /// The URL's host; no host is an error.
    pub(super) fn host(&self) -> Result<String, BadTarget> {
        self.u
            .host_str()
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .ok_or_else(|| self.bad("no host"))
    }

    /// Like [`yes`], the key (lowercase) matched whatever its case.
    pub(super) fn flag(&self, key: &str) -> bool {
        query_any(&self.u, &[key])
            .first()
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "1"))
    }

    /// `scheme://host[:port]path`, with the item's host and port.
    pub(super) fn with_port(&self, scheme: &str, path: &str) -> Result<Url, BadTarget> {
        let port = self.u.port().map(|p| format!(":{p}")).unwrap_or_default();
        Url::parse(&format!("{scheme}://{}{port}{path}", self.host()?))
            .map_err(|e| self.bad(&e.to_string()))
    }
}

/// The error for the item `raw`: it, masked, and `why`.
fn bad(raw: &str, why: &str) -> BadTarget {
    BadTarget {
        item: mask_raw(raw),
        why: why.to_string(),
    }
}
