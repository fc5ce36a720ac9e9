//! Sending: HTTP receivers through reqwest (rustls on ring, the system's CA
//! store), email through lettre. Errors name the receiver with its secrets
//! masked, never its URL (reqwest's errors would carry tokens in it).

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;
use url::Url;

use super::message::{text, title, webhook_body};
use super::target::{SmtpSecurity, Target};
use crate::report::{Outcome, RunReport};

/// Per request (and per SMTP conversation step).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP client for every receiver of a run.
pub struct Sender {
    http: reqwest::Client,
}

fn plain(e: reqwest::Error) -> anyhow::Error {
    anyhow!(e.without_url())
}

impl Sender {
    /// A client with [`TIMEOUT`].
    pub fn new() -> Result<Sender> {
        // rustls needs one crypto provider per process; ring is the one built in.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("stackshot/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(plain)
            .context("cannot set up the HTTP client for notifications")?;
        Ok(Sender { http })
    }

    async fn post(&self, req: reqwest::RequestBuilder) -> Result<()> {
        let resp = req.send().await.map_err(plain)?;
        let status = resp.status();
        if !status.is_success() {
            anyhow::bail!("the receiver answered HTTP {status}");
        }
        Ok(())
    }

    /// Tells `target` about `report`.
    pub async fn send(&self, target: &Target, report: &RunReport) -> Result<()> {
        let (title, text) = (title(report), text(report));
        let priority = if report.result == Outcome::Success {
            3
        } else {
            5
        };
        match target {
            Target::Webhook { url } => {
                self.post(self.http.post(url.clone()).json(&webhook_body(report)))
                    .await
            }
            Target::Ntfy { url, auth } => {
                let mut req = self
                    .http
                    .post(url.clone())
                    .header("Title", title)
                    .header("Priority", priority.to_string())
                    .header(
                        "Tags",
                        if priority == 3 {
                            "white_check_mark"
                        } else {
                            "rotating_light"
                        },
                    )
                    .body(text);
                if let Some((user, pw)) = auth {
                    req = req.basic_auth(user, Some(pw.expose()));
                }
                self.post(req).await
            }
            Target::Gotify { url, token } => {
                self.post(
                    self.http
                        .post(url.clone())
                        .header("X-Gotify-Key", token.expose())
                        .json(&json!({"title": title, "message": text, "priority": priority})),
                )
                .await
            }
            Target::Discord { id, token } => {
                let url = Url::parse(&format!(
                    "https://discord.com/api/webhooks/{id}/{}",
                    token.expose()
                ))
                .context("bad discord webhook id or token")?;
                self.post(
                    self.http
                        .post(url)
                        .json(&json!({"content": format!("**{title}**\n{text}")})),
                )
                .await
            }
            Target::Slack { path } => {
                let url = Url::parse(&format!(
                    "https://hooks.slack.com/services/{}",
                    path.expose()
                ))
                .context("bad slack webhook path")?;
                self.post(
                    self.http
                        .post(url)
                        .json(&json!({"text": format!("*{title}*\n{text}")})),
                )
                .await
            }
            Target::Smtp {
                host,
                port,
                security,
                auth,
                from,
                to,
            } => {
                let mut msg = Message::builder()
                    .from(from.parse().context("bad from address")?)
                    .subject(title)
                    .header(ContentType::TEXT_PLAIN);
                for a in to {
                    msg = msg.to(a.parse().context("bad to address")?);
                }
                let msg = msg.body(text).context("cannot build the email")?;
                let builder = match security {
                    SmtpSecurity::Plain => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                    }
                    SmtpSecurity::StartTls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?
                    }
                    SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
                };
                let mut builder = builder.port(*port).timeout(Some(TIMEOUT));
                if let Some((user, pw)) = auth {
                    builder =
                        builder.credentials(Credentials::new(user.clone(), pw.expose().into()));
                }
                builder.build().send(msg).await?;
                Ok(())
            }
        }
    }

    /// `GET url`, or `POST url` with `body` (a dead-man's switch ping).
    pub async fn ping(&self, url: &Url, body: Option<String>) -> Result<()> {
        let req = match body {
            Some(b) => self.http.post(url.clone()).body(b),
            None => self.http.get(url.clone()),
        };
        self.post(req).await
    }
}
