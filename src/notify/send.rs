//! Sending: one HTTP client (reqwest; rustls on ring, the system's CA store)
//! for every HTTP receiver and the pings, lettre for email. Errors name the
//! receiver with its secrets masked, never its URL (reqwest's errors would
//! carry tokens in it).

use anyhow::{Context as _, Result, anyhow};
use reqwest::RequestBuilder;
use url::Url;

use super::message::Told;
use super::target::Target;
use super::{
    apprise, discord, email, gotify, matrix, ntfy, pushover, slack, teams, telegram, webhook,
};
use crate::config::notify::TIMEOUT;
use crate::report::RunReport;

/// An HTTP client for every receiver of a run.
pub struct Sender {
    http: reqwest::Client,
    /// Tests only: where every request through [`Sender::post`] goes instead
    /// (`http://127.0.0.1:<port>`, its path and query kept).
    #[cfg(test)]
    to: Option<std::net::SocketAddr>,
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
        Ok(Sender {
            http: client()?,
            #[cfg(test)]
            to: None,
        })
    }

    /// A sender whose requests all go to the test receiver at `to`.
    #[cfg(test)]
    pub fn to(to: std::net::SocketAddr) -> Sender {
        Sender {
            to: Some(to),
            ..Sender::new().unwrap()
        }
    }

    async fn post(&self, req: RequestBuilder) -> Result<()> {
        #[cfg(test)]
        let req = match self.to {
            Some(to) => {
                let (client, r) = req.build_split();
                let mut r = r.map_err(plain)?;
                *r.url_mut() = super::testing::at(r.url(), to);
                RequestBuilder::from_parts(client, r)
            }
            None => req,
        };
        let resp = req.send().await.map_err(plain)?;
        let status = resp.status();
        if !status.is_success() {
            anyhow::bail!("the receiver answered HTTP {status}");
        }
        Ok(())
    }

    /// Tells `target` about `report` with the message `m`.
    pub async fn send(&self, target: &Target, report: &RunReport, m: &Told) -> Result<()> {
        let http = &self.http;
        match target {
            Target::Webhook { url } => self.post(webhook::request(http, url, report, m)).await,
            Target::Ntfy { url, auth } => {
                self.post(ntfy::request(http, url, auth.as_ref(), m)).await
            }
            Target::Gotify { url, token } => self.post(gotify::request(http, url, token, m)).await,
            Target::Discord { id, token } => self.post(discord::request(http, id, token, m)?).await,
            Target::Slack { path } => self.post(slack::request(http, path, m)?).await,
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
                email::send(&s, m).await
            }
            Target::Telegram { token, chats } => {
                self.post_each("chats", telegram::requests(http, token, chats, m)?)
                    .await
            }
            Target::Matrix { base, login, rooms } => {
                matrix::send(http, base, login, rooms, &txn_base(), m).await
            }
            Target::Pushover {
                token,
                user,
                devices,
                priority,
            } => {
                self.post(pushover::request(http, token, user, devices, *priority, m))
                    .await
            }
            Target::Teams { url, .. } => self.post(teams::request(http, url, m)?).await,
            Target::Apprise { url, auth } => {
                self.post(apprise::request(http, url, auth.as_ref(), m))
                    .await
            }
        }
    }

    /// Sends every request, each named (a chat), whatever the others did;
    /// the error lists the ones that failed.
    async fn post_each(&self, what: &str, reqs: Vec<(String, RequestBuilder)>) -> Result<()> {
        let all = reqs.len();
        let mut failed = vec![];
        for (name, req) in reqs {
            if let Err(e) = self.post(req).await {
                failed.push(format!("{name}: {e:#}"));
            }
        }
        if !failed.is_empty() {
            anyhow::bail!(
                "{} of {all} {what} not told: {}",
                failed.len(),
                failed.join("; ")
            );
        }
        Ok(())
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

/// The start of this run's Matrix transaction ids: `stackshot-<ms since 1970>`,
/// new at each run (a homeserver drops a message whose id it has seen from
/// the same device).
fn txn_base() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("stackshot-{ms}")
}
