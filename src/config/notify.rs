//! The notification settings the configuration reads: `NOTIFY_URLS` items
//! (one URL per receiver, its scheme naming the service), `NOTIFY_ON` and the
//! `PING_URL*` pings. Pure parsing; a bad item is one line with its password
//! masked. Sending lives in `notify`.

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::env::Secret;

/// What `NOTIFY_URLS` accepts, for error lines.
pub const ACCEPTED: &str = "comma-separated URLs: https://… or http://… (a JSON webhook), ntfy://[user:pass@]host/topic (ntfys:// for HTTPS), gotify://host/token, discord://token@webhookid, slack://T…/B…/secret, smtp://[user:pass@]host:port/?from=…&to=…[&starttls=yes] (smtps:// for TLS)";

/// One notification receiver, parsed from a `NOTIFY_URLS` item.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// POST the run report as JSON.
    Webhook {
        /// The `http(s)://` URL the report is POSTed to, as written in `NOTIFY_URLS`.
        url: Url,
    },
    /// ntfy: POST the message to `base/topic`.
    Ntfy {
        /// The topic's URL, `http(s)://host[:port]/topic`, built from the
        /// item's host, port and topic.
        url: Url,
        /// The user name and password for basic auth, from the item's `user:pass@` part.
        auth: Option<(String, Secret)>,
    },
    /// Gotify: POST `{title, message, priority}` to `base/message`.
    Gotify {
        /// The message endpoint, `http(s)://host[:port][/path]/message`, built
        /// from the item's host, port and path.
        url: Url,
        /// The application token (sent as `X-Gotify-Key`).
        token: Secret,
    },
    /// Discord: POST the message to a webhook.
    Discord {
        /// The webhook's id, from the host part of `discord://token@webhookid`.
        id: String,
        /// The webhook's token, from the user part of `discord://token@webhookid`.
        token: Secret,
    },
    /// Slack: an incoming webhook.
    Slack {
        /// The `T…/B…/…` part of `https://hooks.slack.com/services/…`.
        path: Secret,
    },
    /// Email: send the message over SMTP to every recipient.
    Smtp {
        /// The SMTP server's host name.
        host: String,
        /// The SMTP server's port: the item's port, else 465 for `smtps://`,
        /// 587 with STARTTLS and 25 otherwise.
        port: u16,
        /// How the connection is protected: plain, STARTTLS (`starttls=yes`) or TLS (`smtps://`).
        security: SmtpSecurity,
        /// The user name and password to log in with, from the item's `user:pass@` part.
        auth: Option<(String, Secret)>,
        /// The sender's address, from the item's `from=` query parameter.
        from: String,
        /// The recipients' addresses, from the item's `to=` query parameter (comma-separated).
        to: Vec<String>,
    },
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// None (a relay on the local network).
    Plain,
    /// Upgrades the plain connection with STARTTLS, which the server must offer.
    StartTls,
    /// TLS from the first byte (`smtps://`, usually port 465).
    Tls,
}

impl Target {
    /// The scheme, as `stackshot_notify_failures_total{scheme}` labels it.
    pub fn scheme(&self) -> &'static str {
        match self {
            Target::Webhook { url } if url.scheme() == "http" => "http",
            Target::Webhook { .. } => "https",
            Target::Ntfy { .. } => "ntfy",
            Target::Gotify { .. } => "gotify",
            Target::Discord { .. } => "discord",
            Target::Slack { .. } => "slack",
            Target::Smtp { .. } => "smtp",
        }
    }
}

/// The receiver with every secret masked: for logs and errors.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Webhook { url } => write!(f, "{}", masked(url)),
            Target::Ntfy { url, .. } => write!(f, "ntfy {}", masked(url)),
            Target::Gotify { url, .. } => write!(f, "gotify {}", masked(url)),
            Target::Discord { id, .. } => write!(f, "discord webhook {id}"),
            Target::Slack { .. } => write!(f, "slack webhook"),
            Target::Smtp { host, port, to, .. } => {
                write!(f, "smtp {host}:{port} to {}", to.join(", "))
            }
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self})")
    }
}

/// `url` as it may be shown: its scheme, host and port, and `/…` for
/// whatever followed. Receivers keep their secrets in every other part: the
/// password, the query (`?key=`), and the path (a Slack, Discord or Home
/// Assistant webhook's token, an ntfy topic).
pub fn masked(url: &Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    let rest = url.username() != ""
        || url.password().is_some()
        || !matches!(url.path(), "" | "/")
        || url.query().is_some()
        || url.fragment().is_some();
    if rest {
        shown.push_str("/…");
    }
    shown
}

/// The item as it may be shown ([`masked`]), or only its scheme when it is
/// no URL at all, in case a secret sits in the rest.
fn mask_raw(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(u) if u.host_str().is_some() => masked(&u),
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

fn decoded(s: &str) -> String {
    percent_decode(s)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn auth(u: &Url) -> Option<(String, Secret)> {
    if u.username().is_empty() {
        return None;
    }
    Some((
        decoded(u.username()),
        Secret::new(decoded(u.password().unwrap_or(""))),
    ))
}

fn query(u: &Url, key: &str) -> Vec<String> {
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

fn yes(u: &Url, key: &str) -> bool {
    query(u, key)
        .first()
        .is_some_and(|v| matches!(v.as_str(), "yes" | "true" | "1"))
}

/// An item that does not parse: the item (password masked) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTarget {
    /// The item, its password masked.
    pub item: String,
    /// What is wrong with it.
    pub why: String,
}

impl fmt::Display for BadTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.item, self.why)
    }
}

/// Parses one `NOTIFY_URLS` item; the error names the item (masked).
///
/// Its steps: read the item as a URL (`Item::read`), then the receiver
/// its scheme names (`Item::webhook`, `Item::ntfy`, `Item::gotify`,
/// `Item::discord`, `Item::slack`, `Item::smtp`).
pub fn parse(raw: &str) -> Result<Target, BadTarget> {
    let item = Item::read(raw.trim())?;
    match item.u.scheme() {
        "http" | "https" => item.webhook(),
        "ntfy" | "ntfys" => item.ntfy(),
        "gotify" => item.gotify(),
        "discord" => item.discord(),
        "slack" => item.slack(),
        "smtp" | "smtps" => item.smtp(),
        other => Err(item.bad(&format!("unknown scheme {other:?}"))),
    }
}

/// One `NOTIFY_URLS` item read as a URL, for the receiver its scheme names.
struct Item<'a> {
    /// The item as written (trimmed).
    raw: &'a str,
    /// The item as a URL.
    u: Url,
    /// Its path's non-empty segments, decoded.
    segments: Vec<String>,
}

impl<'a> Item<'a> {
    /// Reads `raw` (trimmed) as a URL.
    fn read(raw: &'a str) -> Result<Item<'a>, BadTarget> {
        let u = Url::parse(raw).map_err(|e| bad(raw, &format!("not a URL ({e})")))?;
        let segments: Vec<String> = u
            .path_segments()
            .map(|s| s.filter(|x| !x.is_empty()).map(decoded).collect())
            .unwrap_or_default();
        Ok(Item { raw, u, segments })
    }

    /// The error for this item: it, masked, and `why`.
    fn bad(&self, why: &str) -> BadTarget {
        bad(self.raw, why)
    }

    /// The URL's host; no host is an error.
    fn host(&self) -> Result<String, BadTarget> {
        self.u
            .host_str()
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .ok_or_else(|| self.bad("no host"))
    }

    /// `scheme://host[:port]path`, with the item's host and port.
    fn with_port(&self, scheme: &str, path: &str) -> Result<Url, BadTarget> {
        let port = self.u.port().map(|p| format!(":{p}")).unwrap_or_default();
        Url::parse(&format!("{scheme}://{}{port}{path}", self.host()?))
            .map_err(|e| self.bad(&e.to_string()))
    }

    /// Reads a JSON webhook receiver from an `http(s)://…` item.
    fn webhook(&self) -> Result<Target, BadTarget> {
        self.host()?;
        Ok(Target::Webhook {
            url: self.u.clone(),
        })
    }

    /// Reads an ntfy receiver from an item of the form `ntfy(s)://[user:pass@]host/topic`.
    fn ntfy(&self) -> Result<Target, BadTarget> {
        let [topic] = self.segments.as_slice() else {
            return Err(self.bad("expected one topic: ntfy://host/topic"));
        };
        let scheme = if self.u.scheme() == "ntfys" {
            "https"
        } else {
            "http"
        };
        Ok(Target::Ntfy {
            url: self.with_port(scheme, &format!("/{topic}"))?,
            auth: auth(&self.u),
        })
    }

    /// Reads a Gotify receiver from an item of the form `gotify://host[/path]/token`.
    fn gotify(&self) -> Result<Target, BadTarget> {
        let Some((token, base)) = self.segments.split_last() else {
            return Err(self.bad("no application token: gotify://host/token"));
        };
        let scheme = if yes(&self.u, "disabletls") {
            "http"
        } else {
            "https"
        };
        let mut path = String::new();
        for s in base {
            path.push('/');
            path.push_str(s);
        }
        path.push_str("/message");
        Ok(Target::Gotify {
            url: self.with_port(scheme, &path)?,
            token: Secret::new(token.clone()),
        })
    }

    /// Reads a Discord receiver from an item of the form `discord://token@webhookid`.
    fn discord(&self) -> Result<Target, BadTarget> {
        let id = self.host()?;
        if self.u.username().is_empty() {
            return Err(self.bad("no webhook token: discord://token@webhookid"));
        }
        Ok(Target::Discord {
            id,
            token: Secret::new(decoded(self.u.username())),
        })
    }

    /// Reads a Slack receiver from an item of the form `slack://T…/B…/secret`.
    fn slack(&self) -> Result<Target, BadTarget> {
        let mut parts = vec![self.host()?];
        parts.extend(self.segments.iter().cloned());
        if parts.len() != 3 {
            return Err(
                self.bad("expected slack://T…/B…/secret (the path of the incoming webhook's URL)")
            );
        }
        Ok(Target::Slack {
            path: Secret::new(parts.join("/")),
        })
    }

    /// Reads an SMTP receiver from an item of the form
    /// `smtp(s)://[user:pass@]host:port/?from=…&to=…[&starttls=yes]`.
    fn smtp(&self) -> Result<Target, BadTarget> {
        let u = &self.u;
        let tls = u.scheme() == "smtps";
        let starttls = yes(u, "starttls");
        if tls && starttls {
            return Err(self.bad("smtps:// is TLS already; starttls=yes is for smtp://"));
        }
        let from = query(u, "from");
        let to = query(u, "to");
        let [from] = from.as_slice() else {
            return Err(self.bad("needs exactly one from=address"));
        };
        if to.is_empty() {
            return Err(self.bad("needs to=address (several: to=a@x,b@y)"));
        }
        for a in to.iter().chain([from]) {
            if a.parse::<lettre::Address>().is_err() {
                return Err(self.bad(&format!("{a:?} is not an email address")));
            }
        }
        Ok(Target::Smtp {
            host: self.host()?,
            port: u.port().unwrap_or(if tls {
                465
            } else if starttls {
                587
            } else {
                25
            }),
            security: if tls {
                SmtpSecurity::Tls
            } else if starttls {
                SmtpSecurity::StartTls
            } else {
                SmtpSecurity::Plain
            },
            auth: auth(u),
            from: from.clone(),
            to,
        })
    }
}

/// The error for the item `raw`: it, masked, and `why`.
fn bad(raw: &str, why: &str) -> BadTarget {
    BadTarget {
        item: mask_raw(raw),
        why: why.to_string(),
    }
}

/// Splits `NOTIFY_URLS` on the commas that start a new URL (`scheme://`):
/// a comma inside an item (`to=a@x,b@y`) stays in it.
fn split_items(value: &str) -> Vec<String> {
    let starts_url = |p: &str| {
        p.trim_start().split_once("://").is_some_and(|(scheme, _)| {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        })
    };
    let mut items: Vec<String> = vec![];
    for piece in value.split(',') {
        match items.last_mut() {
            Some(last) if !starts_url(piece) => {
                last.push(',');
                last.push_str(piece);
            }
            _ => items.push(piece.to_string()),
        }
    }
    items
        .into_iter()
        .map(|i| i.trim().trim_end_matches(',').trim().to_string())
        .filter(|i| !i.is_empty())
        .collect()
}

/// Parses the whole `NOTIFY_URLS` value (empty items ignored).
pub fn parse_list(value: &str) -> Result<Vec<Target>, BadTarget> {
    split_items(value).iter().map(|i| parse(i)).collect()
}

/// The monitoring pings: `PING_URL` and its success and failure overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pings {
    /// `PING_URL`: `/start` at the start, itself on success, `/fail` on failure.
    pub base: Option<Url>,
    /// `PING_URL_SUCCESS`: replaces the success ping (a GET: Uptime Kuma's push URL).
    pub success: Option<Url>,
    /// `PING_URL_FAILURE`: replaces the failure ping (a GET).
    pub failure: Option<Url>,
}

/// The configured receivers of a run.
#[derive(Debug, Clone)]
pub struct Notifier {
    /// The receivers notified of a run, from `NOTIFY_URLS`.
    pub targets: Vec<Target>,
    /// Which runs are notified, from `NOTIFY_ON`.
    pub on: NotifyOn,
    /// The monitoring pings sent at a run's start and end, from the `PING_URL*` variables.
    pub pings: Pings,
}

/// When notifications go out (`NOTIFY_ON`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOn {
    /// Failed and partial runs only (the default).
    Failure,
    /// Every run, whatever its result.
    Always,
}

/// How long a notification may take: per request (and per SMTP
/// conversation step).
pub const TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scheme() {
        let t = parse_list(
            "https://hooks.example/x?key=abc, ntfy://me:pw@ntfy.lan:8080/backups,ntfys://ntfy.example/b,\
             gotify://gotify.example/sub/AppTok,discord://tok@123456,slack://T1/B2/sec,\
             smtp://u:p%40ss@mail.example:2525/?from=bk@example.org&to=a@example.org,b@example.org&starttls=yes",
        )
        .unwrap();
        assert_eq!(
            t.iter().map(Target::scheme).collect::<Vec<_>>(),
            [
                "https", "ntfy", "ntfy", "gotify", "discord", "slack", "smtp"
            ]
        );
        let Target::Ntfy { url, auth } = &t[1] else {
            panic!()
        };
        assert_eq!(url.as_str(), "http://ntfy.lan:8080/backups");
        let (user, pw) = auth.as_ref().unwrap();
        assert_eq!((user.as_str(), pw.expose()), ("me", "pw"));
        let Target::Ntfy { url, auth } = &t[2] else {
            panic!()
        };
        assert_eq!(
            (url.as_str(), auth.is_none()),
            ("https://ntfy.example/b", true)
        );
        let Target::Gotify { url, token } = &t[3] else {
            panic!()
        };
        assert_eq!(
            (url.as_str(), token.expose()),
            ("https://gotify.example/sub/message", "AppTok")
        );
        let Target::Discord { id, token } = &t[4] else {
            panic!()
        };
        assert_eq!((id.as_str(), token.expose()), ("123456", "tok"));
        let Target::Slack { path } = &t[5] else {
            panic!()
        };
        assert_eq!(path.expose(), "T1/B2/sec");
        let Target::Smtp {
            host,
            port,
            security,
            auth,
            from,
            to,
        } = &t[6]
        else {
            panic!()
        };
        assert_eq!(
            (host.as_str(), *port, *security),
            ("mail.example", 2525, SmtpSecurity::StartTls)
        );
        assert_eq!(auth.as_ref().unwrap().1.expose(), "p@ss");
        assert_eq!(from, "bk@example.org");
        assert_eq!(to, &["a@example.org", "b@example.org"]);
    }

    #[test]
    fn defaults_and_plain_http_gotify() {
        let Target::Smtp { port, security, .. } =
            parse("smtps://mail.example/?from=a@b.c&to=d@e.f").unwrap()
        else {
            panic!()
        };
        assert_eq!((port, security), (465, SmtpSecurity::Tls));
        let Target::Smtp { port, security, .. } =
            parse("smtp://127.0.0.1/?from=a@b.c&to=d@e.f").unwrap()
        else {
            panic!()
        };
        assert_eq!((port, security), (25, SmtpSecurity::Plain));
        let Target::Gotify { url, .. } = parse("gotify://g.lan:8000/T?disabletls=yes").unwrap()
        else {
            panic!()
        };
        assert_eq!(url.as_str(), "http://g.lan:8000/message");
    }

    /// A receiver's secret in its path (a Slack or Home Assistant webhook
    /// given as a plain https:// one, an ntfy topic, a Gotify path) or its
    /// query never reaches a log line: only the scheme, host and port do.
    #[test]
    fn shown_receivers_keep_only_scheme_host_and_port() {
        for (raw, shown) in [
            (
                "https://hooks.slack.com/services/T1/B2/sekret1",
                "https://hooks.slack.com/…",
            ),
            (
                "https://ha.lan:8123/api/webhook/sekret2",
                "https://ha.lan:8123/…",
            ),
            (
                "https://hooks.example/x?key=sekret3",
                "https://hooks.example/…",
            ),
            ("ntfy://ntfy.lan/sekret4-topic", "ntfy http://ntfy.lan/…"),
            ("ntfys://me:sekret5@ntfy.lan/t", "ntfy https://ntfy.lan/…"),
            (
                "gotify://gotify.lan/sekret6path/AppTok",
                "gotify https://gotify.lan/…",
            ),
            ("https://plain.example", "https://plain.example"),
        ] {
            let t = parse(raw).unwrap();
            let text = format!("{t} {t:?}");
            assert!(text.contains(shown), "{raw}: {text}");
            assert!(!text.contains("sekret"), "{raw}: {text}");
            assert!(!text.contains("AppTok"), "{raw}: {text}");
        }
        // A bad item: the same, and nothing of an item that is no URL.
        for raw in ["ftp://host/sekret7", "ntfy://sekret8:pw@host", "sekret9"] {
            let e = parse(raw).map(|_| ()).unwrap_err().to_string();
            assert!(!e.contains("sekret"), "{raw}: {e}");
        }
    }

    #[test]
    fn bad_items_are_one_line_with_the_password_masked() {
        for (raw, want) in [
            ("ftp://me:hunter2@x/y", "ftp://x/…: unknown scheme \"ftp\""),
            ("ntfy://me:hunter2@x", "ntfy://x/…: expected one topic"),
            (
                "smtp://me:hunter2@mail/?to=a@b.c",
                "smtp://mail/…: needs exactly one from=address",
            ),
            ("smtp://mail/?from=a@b.c", "smtp://mail/…: needs to=address"),
            (
                "smtp://mail/?from=nope&to=a@b.c",
                "\"nope\" is not an email address",
            ),
            ("discord://123456", "no webhook token"),
            ("slack://T1/B2", "expected slack://"),
            ("gotify://host", "no application token"),
            ("hunter2", "…: not a URL"),
        ] {
            let e = parse_list(raw).unwrap_err().to_string();
            assert!(e.contains(want), "{raw}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn display_and_debug_hide_secrets() {
        for raw in [
            "https://h.example/x?token=hunter2",
            "ntfy://me:hunter2@h/t",
            "gotify://h/hunter2",
            "discord://hunter2@1",
            "slack://T/B/hunter2",
            "smtp://u:hunter2@h/?from=a@b.c&to=d@e.f",
        ] {
            let t = parse(raw).unwrap();
            assert!(!format!("{t} {t:?}").contains("hunter2"), "{t}");
        }
    }
}
