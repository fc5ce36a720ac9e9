//! Sending: one HTTP client (reqwest; rustls on ring, the system's CA store)
//! for every HTTP receiver and the pings, lettre for email. Errors name the
//! receiver with its secrets masked, never its URL (reqwest's errors would
//! carry tokens in it).

use anyhow::{Context as _, Result, anyhow};
use reqwest::RequestBuilder;
use url::Url;

use super::message::Told;
use super::target::Target;
use super::{discord, email, gotify, ntfy, slack, webhook};
use crate::config::notify::TIMEOUT;
use crate::report::RunReport;

/// An HTTP client for every receiver of a run.
pub struct Sender {
    http: reqwest::Client,
}

fn plain(e: reqwest::Error) -> anyhow::Error {
    anyhow!(e.without_url())
}

/// The HTTP client: [`TIMEOUT`], stackshot's user agent.
pub fn client() -> Result<reqwest::Client> {
    // rustls needs one crypto provider per process; ring is the one built in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("stackshot/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(plain)
        .context("cannot set up the HTTP client for notifications")
}

impl Sender {
    /// A client with [`TIMEOUT`].
    pub fn new() -> Result<Sender> {
        Ok(Sender { http: client()? })
    }

    async fn post(&self, req: RequestBuilder) -> Result<()> {
        let resp = req.send().await.map_err(plain)?;
        let status = resp.status();
        if !status.is_success() {
            anyhow::bail!("the receiver answered HTTP {status}");
        }
        Ok(())
    }

    /// Tells `target` about `report`.
    pub async fn send(&self, target: &Target, report: &RunReport) -> Result<()> {
        let m = Told::of(report);
        let http = &self.http;
        match target {
            Target::Webhook { url } => self.post(webhook::request(http, url, report)).await,
            Target::Ntfy { url, auth } => {
                self.post(ntfy::request(http, url, auth.as_ref(), &m)).await
            }
            Target::Gotify { url, token } => self.post(gotify::request(http, url, token, &m)).await,
            Target::Discord { id, token } => {
                self.post(discord::request(http, id, token, &m)?).await
            }
            Target::Slack { path } => self.post(slack::request(http, path, &m)?).await,
            Target::Smtp {
                host,
                port,
                security,
                auth,
                from,
                to,
            } => {
                let s = email::Smtp {
                    host,
                    port: *port,
                    security: *security,
                    auth: auth.as_ref(),
                    from,
                    to,
                };
                email::send(&s, &m).await
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
