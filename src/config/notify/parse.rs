//! The receivers each scheme names, read from an item: webhook, ntfy,
//! Gotify, Discord, Slack, email.

use super::item::{auth, decoded, query, yes};
use super::{BadTarget, Item, SmtpSecurity, Target};
use crate::env::Secret;

impl Item<'_> {
    /// Reads a JSON webhook receiver from an `http(s)://…` item.
    pub(super) fn webhook(&self) -> Result<Target, BadTarget> {
        self.host()?;
        Ok(Target::Webhook {
            url: self.u.clone(),
        })
    }

    /// Reads an ntfy receiver from an item of the form `ntfy(s)://[user:pass@]host/topic`.
    pub(super) fn ntfy(&self) -> Result<Target, BadTarget> {
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
    pub(super) fn gotify(&self) -> Result<Target, BadTarget> {
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
    pub(super) fn discord(&self) -> Result<Target, BadTarget> {
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
    pub(super) fn slack(&self) -> Result<Target, BadTarget> {
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
    pub(super) fn smtp(&self) -> Result<Target, BadTarget> {
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
