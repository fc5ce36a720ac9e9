//! The notification settings the configuration reads: `NOTIFY_URLS` items
//! (one URL per receiver, its scheme naming the service), `NOTIFY_ON` and the
//! `PING_URL*` pings. Pure parsing; a bad item is one line with its password
//! masked. Sending lives in `notify`.

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::env::Secret;
use item::Item;

mod chat;
mod item;
mod parse;
mod template;

pub use template::{FIELDS as TEMPLATE_FIELDS, Rendered, Template};

/// What `NOTIFY_URLS` accepts, for error lines.
pub const ACCEPTED: &str = "comma-separated URLs: https://… or http://… (a JSON webhook), ntfy://[user:pass@]host/topic (ntfys:// for HTTPS), gotify://host/token, discord://token@webhookid, slack://T…/B…/secret, smtp://[user:pass@]host:port/?from=…&to=…[&starttls=yes] (smtps:// for TLS), telegram://<bot token>@telegram?chats=@channel,<chat id>, matrix://:<access token>@host[:port]/?rooms=!id,%23alias[&disableTLS=yes] (or matrix://user:password@…), pushover://shoutrrr:<app token>@<user key>/[?devices=…&priority=…], teams+https://<a Teams workflow's URL>, apprise://host[:port]/<key> (apprises:// for HTTPS)";

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
    /// Telegram: the bot's message to each chat.
    Telegram {
        /// The bot's token, `<bot id>:<secret>`, from the item's `user:password` part.
        token: Secret,
        /// The chats, from the item's `chats=` (or `channels=`) query parameter.
        chats: Vec<TelegramChat>,
    },
    /// Matrix: an `m.text` message in each room.
    Matrix {
        /// The homeserver, `https://host[:port]` (`http://` with `disableTLS=yes`).
        base: Url,
        /// How stackshot gets its access token.
        login: MatrixLogin,
        /// The rooms: ids (`!…`) and aliases (`#…`, the `#` added when the
        /// item left it out); none: every room the account has joined.
        rooms: Vec<String>,
    },
    /// Pushover: a message through the messages API.
    Pushover {
        /// The application's API token, from the item's password.
        token: Secret,
        /// The user (or group) key, from the item's host.
        user: Secret,
        /// The devices to tell, from `devices=`; none: every device.
        devices: Vec<String>,
        /// The item's `priority=` (-2 to 1); none: 0 for a success, 1 otherwise.
        priority: Option<i8>,
    },
    /// A Microsoft Teams workflow: an Adaptive Card POSTed to its URL.
    Teams {
        /// The workflow URL's host, the only part shown.
        host: String,
        /// The workflow's `https://` URL (the item without `teams+`): its
        /// query carries the signature that lets anyone post.
        url: Secret,
    },
    /// The Apprise API: POST the message to a stored configuration's key.
    Apprise {
        /// The endpoint, `http(s)://host[:port][/path]/notify/<key>`.
        url: Url,
        /// The user name and password for basic auth, from the item's `user:pass@` part.
        auth: Option<(String, Secret)>,
    },
}

/// One Telegram chat to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramChat {
    /// The chat's id (`-100…`) or a channel's `@name`: `sendMessage`'s `chat_id`.
    pub id: String,
    /// A forum topic's id (`chat:thread` in the item): `message_thread_id`.
    pub thread: Option<u64>,
}

/// How stackshot gets a Matrix access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatrixLogin {
    /// The item's password is the token (its user name is empty).
    Token(Secret),
    /// Logs in with the user name and password at each run.
    Password {
        /// The account's user name (`@user:server` or `user`).
        user: String,
        /// The account's password.
        password: Secret,
        /// The device id asked for (`deviceID=`, else `stackshot`), so that
        /// each login replaces the last one's device.
        device: String,
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
            Target::Telegram { .. } => "telegram",
            Target::Matrix { .. } => "matrix",
            Target::Pushover { .. } => "pushover",
            Target::Teams { .. } => "teams",
            Target::Apprise { .. } => "apprise",
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
            Target::Telegram { chats, .. } => {
                let ids: Vec<&str> = chats.iter().map(|c| c.id.as_str()).collect();
                write!(f, "telegram to {}", ids.join(", "))
            }
            Target::Matrix { base, rooms, .. } if rooms.is_empty() => {
                write!(f, "matrix {} to every joined room", masked(base))
            }
            Target::Matrix { base, rooms, .. } => {
                write!(f, "matrix {} to {}", masked(base), rooms.join(", "))
            }
            Target::Pushover { devices, .. } if devices.is_empty() => {
                write!(f, "pushover to every device")
            }
            Target::Pushover { devices, .. } => {
                write!(f, "pushover to {}", devices.join(", "))
            }
            Target::Teams { host, .. } => write!(f, "teams workflow https://{host}/…"),
            Target::Apprise { url, .. } => write!(f, "apprise {}", masked(url)),
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
/// `Item::discord`, `Item::slack`, `Item::smtp`, `Item::telegram`,
/// `Item::matrix`, `Item::pushover`, `Item::teams`, `Item::apprise`).
pub fn parse(raw: &str) -> Result<Target, BadTarget> {
    let item = Item::read(raw.trim())?;
    match item.u.scheme() {
        "http" | "https" => item.webhook(),
        "ntfy" | "ntfys" => item.ntfy(),
        "gotify" => item.gotify(),
        "discord" => item.discord(),
        "slack" => item.slack(),
        "smtp" | "smtps" => item.smtp(),
        "telegram" => item.telegram(),
        "matrix" => item.matrix(),
        "pushover" => item.pushover(),
        "teams" | "teams+https" | "teams+http" => item.teams(),
        "apprise" | "apprises" => item.apprise(),
        other => Err(item.bad(&format!("unknown scheme {other:?}"))),
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
    /// The title and body of the messages, from `NOTIFY_TEMPLATE[_FILE]`;
    /// `None`: the default message.
    pub template: Option<Template>,
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
mod tests;
