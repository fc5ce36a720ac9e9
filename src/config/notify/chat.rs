//! The chat and push receivers, read from an item: Telegram, Matrix,
//! Pushover, a Microsoft Teams workflow, the Apprise API. Their forms follow
//! containrrr/shoutrrr's, so that a `NOTIFICATION_URLS` item moves over as is
//! (Teams excepted: shoutrrr's `teams://` is for the retired Office 365
//! connectors).

use url::Url;

use super::item::{auth, decoded, query_any};
use super::{BadTarget, Item, MatrixLogin, Target, TelegramChat};
use crate::env::Secret;

/// The device name a Matrix password login asks for, so that each run's
/// login replaces the last one's instead of adding a device.
const MATRIX_DEVICE: &str = "stackshot";

impl Item<'_> {
    /// Reads a Telegram receiver from an item of the form
    /// `telegram://<bot id>:<secret>@telegram?chats=@channel,-100…[:thread]`.
    pub(super) fn telegram(&self) -> Result<Target, BadTarget> {
        let form = "telegram://<bot token>@telegram?chats=@channel,<chat id>";
        let token = format!(
            "{}:{}",
            decoded(self.u.username()),
            decoded(self.u.password().unwrap_or(""))
        );
        let (id, secret) = token.split_once(':').unwrap_or_default();
        let good = !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !good {
            return Err(self.bad(&format!(
                "the bot token is not <digits>:<letters, digits, _ or ->: {form}"
            )));
        }
        let chats = query_any(&self.u, &["chats", "channels"]);
        if chats.is_empty() {
            return Err(self.bad(&format!("no chats=: {form}")));
        }
        let chats = chats
            .iter()
            .map(|c| self.telegram_chat(c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Target::Telegram {
            token: Secret::new(token),
            chats,
        })
    }

    /// One `chats=` entry: a chat id or an `@channel`, and an optional `:thread` id.
    fn telegram_chat(&self, c: &str) -> Result<TelegramChat, BadTarget> {
        let (id, thread) = match c.split_once(':') {
            Some((id, t)) => match t.parse::<u64>() {
                Ok(t) => (id, Some(t)),
                Err(_) => {
                    return Err(self.bad(&format!(
                        "chat {c:?}: the topic after ':' is not a number (chat:thread)"
                    )));
                }
            },
            None => (c, None),
        };
        let number = id.strip_prefix('-').unwrap_or(id);
        let name = id.strip_prefix('@');
        let good = (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
            || name.is_some_and(|n| {
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            });
        if !good {
            return Err(self.bad(&format!(
                "chat {id:?} is neither a chat id (-100…) nor an @channel name"
            )));
        }
        Ok(TelegramChat {
            id: id.to_string(),
            thread,
        })
    }

    /// Reads a Matrix receiver from an item of the form
    /// `matrix://:accesstoken@host[:port]/?rooms=!id,#alias[&disableTLS=yes]`
    /// or `matrix://user:password@host…`.
    pub(super) fn matrix(&self) -> Result<Target, BadTarget> {
        let form = "matrix://:<access token>@host[:port]/?rooms=!roomid,%23alias:server (or matrix://user:password@host…)";
        if self.u.fragment().is_some() {
            return Err(self.bad(&format!(
                "a room alias's # must be written %23 (or left out): {form}"
            )));
        }
        let user = decoded(self.u.username());
        let password = decoded(self.u.password().unwrap_or(""));
        if password.is_empty() {
            return Err(self.bad(&format!("no access token or password: {form}")));
        }
        let login = if user.is_empty() {
            MatrixLogin::Token(Secret::new(password))
        } else {
            let device = query_any(&self.u, &["deviceid"]);
            MatrixLogin::Password {
                user,
                password: Secret::new(password),
                device: device.first().map_or(MATRIX_DEVICE, |d| d.as_str()).into(),
            }
        };
        let scheme = if self.flag("disabletls") {
            "http"
        } else {
            "https"
        };
        let rooms = query_any(&self.u, &["rooms", "room"])
            .into_iter()
            .map(|r| {
                if r.starts_with('!') || r.starts_with('#') {
                    r
                } else {
                    format!("#{r}")
                }
            })
            .collect();
        Ok(Target::Matrix {
            base: self.with_port(scheme, "")?,
            login,
            rooms,
        })
    }

    /// Reads a Pushover receiver from an item of the form
    /// `pushover://shoutrrr:<app token>@<user key>/?devices=a,b&priority=…`.
    pub(super) fn pushover(&self) -> Result<Target, BadTarget> {
        let form = "pushover://shoutrrr:<app token>@<user key>/[?devices=…&priority=-2…1]";
        let token = decoded(self.u.password().unwrap_or(""));
        if token.is_empty() {
            return Err(self.bad(&format!("no application token: {form}")));
        }
        let user = self
            .host()
            .map_err(|_| self.bad(&format!("no user key: {form}")))?;
        let priority = match query_any(&self.u, &["priority"]).first() {
            None => None,
            Some(p) => match p.parse::<i8>() {
                Ok(p @ -2..=1) => Some(p),
                Ok(2) => {
                    return Err(self.bad(
                        "priority 2 (emergency) needs retry= and expire=, which stackshot does not send: use -2 to 1",
                    ));
                }
                _ => return Err(self.bad(&format!("priority {p:?} is not -2, -1, 0 or 1"))),
            },
        };
        Ok(Target::Pushover {
            token: Secret::new(token),
            user: Secret::new(user),
            devices: query_any(&self.u, &["devices", "device"]),
            priority,
        })
    }

    /// Reads a Microsoft Teams workflow receiver from an item of the form
    /// `teams+https://<the workflow's URL>`.
    pub(super) fn teams(&self) -> Result<Target, BadTarget> {
        let form = "teams+https://<the workflow's URL, as Teams or Power Automate gives it>";
        if self.u.scheme() == "teams" {
            return Err(self.bad(&format!(
                "teams:// is for Office 365 connectors, which Microsoft retired; give a workflow's URL: {form}"
            )));
        }
        if self.u.scheme() != "teams+https" {
            return Err(self.bad(&format!("a workflow's URL is https: {form}")));
        }
        // The workflow's URL as written (its query is its signature), not
        // rebuilt from the item's parts.
        let url = Url::parse(&self.raw["teams+".len()..])
            .ok()
            .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()))
            .ok_or_else(|| self.bad(&format!("no host: {form}")))?;
        Ok(Target::Teams {
            host: url.host_str().unwrap_or_default().to_string(),
            url: Secret::new(url.as_str()),
        })
    }

    /// Reads an Apprise API receiver from an item of the form
    /// `apprise(s)://[user:pass@]host[:port][/path]/key`.
    pub(super) fn apprise(&self) -> Result<Target, BadTarget> {
        let form = "apprise://host[:port]/<configuration key> (apprises:// for HTTPS)";
        if !query_any(&self.u, &["urls"]).is_empty() {
            return Err(self.bad(&format!(
                "stateless urls= is not supported: store the URLs under a key in the Apprise API, then {form}"
            )));
        }
        let Some((key, base)) = self.segments.split_last() else {
            return Err(self.bad(&format!("no configuration key: {form}")));
        };
        let scheme = if self.u.scheme() == "apprises" {
            "https"
        } else {
            "http"
        };
        let mut path: String = base.iter().map(|s| format!("/{s}")).collect();
        path.push_str(&format!("/notify/{key}"));
        Ok(Target::Apprise {
            url: self.with_port(scheme, &path)?,
            auth: auth(&self.u),
        })
    }
}
