//! Telling people how a run went: `NOTIFY_URLS` (webhook, ntfy, Gotify,
//! Discord, Slack, email, Telegram, Matrix, Pushover, a Teams workflow, the
//! Apprise API: a file per kind of receiver; `target` parses the
//! URLs, `message` writes what they say, `send` dispatches) after the run,
//! and `PING_URL` (a dead-man's switch: healthchecks.io's protocol) at its
//! start and end.
//!
//! Everything here happens outside the stop window, and nothing here changes
//! a run's result: a receiver that fails is logged, recorded in the report
//! (`notify_failures`) and counted in `stackshot_notify_failures_total{scheme}`.

mod apprise;
mod discord;
mod email;
mod gotify;
mod matrix;
pub mod message;
mod ntfy;
mod pushover;
mod send;
mod slack;
mod teams;
mod telegram;
mod webhook;

use futures_util::future::join_all;
use url::Url;

pub use crate::config::notify as target;
pub use crate::config::notify::{Notifier, NotifyOn, Pings, Target, Template};

pub use crate::report::NotifyFailure;
use crate::report::{Outcome, RunReport};

/// A ping: the URL and, for a POST, its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    /// The URL to ping: `PING_URL` itself or with `/start` or `/fail` added,
    /// or a `PING_URL_SUCCESS`/`PING_URL_FAILURE` override.
    pub url: Url,
    /// `Some`: POST this text (healthchecks.io stores it with the ping); `None`: GET.
    pub body: Option<String>,
}

fn join(base: &Url, leaf: &str) -> Url {
    let mut u = base.clone();
    let path = format!("{}/{leaf}", u.path().trim_end_matches('/'));
    u.set_path(&path);
    u
}

impl Pings {
    /// True when none of `PING_URL`, `PING_URL_SUCCESS` and `PING_URL_FAILURE` is set.
    pub fn is_empty(&self) -> bool {
        self.base.is_none() && self.success.is_none() && self.failure.is_none()
    }

    /// The ping at the start of a run: `GET <PING_URL>/start`.
    pub fn start(&self) -> Option<Ping> {
        self.base.as_ref().map(|b| Ping {
            url: join(b, "start"),
            body: None,
        })
    }

    /// The ping at the end: the override (GET) or `PING_URL` itself / `…/fail`
    /// (POST, with the summary or the reason as the body).
    pub fn end(&self, report: &RunReport) -> Option<Ping> {
        let ok = report.result == Outcome::Success;
        let over = if ok { &self.success } else { &self.failure };
        if let Some(u) = over {
            return Some(Ping {
                url: u.clone(),
                body: None,
            });
        }
        let b = self.base.as_ref()?;
        Some(Ping {
            url: if ok { b.clone() } else { join(b, "fail") },
            body: Some(message::text(report)),
        })
    }
}

/// A ping URL for logs: scheme and host only (the path is the check's secret).
fn host_of(u: &Url) -> String {
    format!("{}://{}", u.scheme(), u.host_str().unwrap_or("?"))
}

impl Notifier {
    fn sender(&self) -> Option<send::Sender> {
        if self.targets.is_empty() && self.pings.is_empty() {
            return None;
        }
        match send::Sender::new() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "notifications are off for this run");
                None
            }
        }
    }

    /// At the start of a run: the start ping. A failure is logged and returned.
    pub async fn started(&self) -> Vec<NotifyFailure> {
        let Some(ping) = self.pings.start() else {
            return vec![];
        };
        let Some(sender) = self.sender() else {
            return vec![];
        };
        match sender.ping(&ping.url, ping.body).await {
            Ok(()) => vec![],
            Err(e) => vec![failure("ping", host_of(&ping.url), e)],
        }
    }

    /// At the end of a run (the stack is running again): the end ping, and
    /// every `NOTIFY_URLS` receiver when `NOTIFY_ON` wants this result, all at
    /// once. Returns the ones that failed (each logged).
    pub async fn finished(&self, report: &RunReport) -> Vec<NotifyFailure> {
        let Some(sender) = self.sender() else {
            return vec![];
        };
        let sender = &sender;
        let tell = self.on.wants_report(report);
        let told = &message::Told::from_template(report, self.template.as_ref());
        let sends = self.targets.iter().filter(|_| tell).map(|t| async move {
            let r = sender.send(t, report, told).await;
            if r.is_ok() {
                tracing::info!(to = %t, "notified");
            }
            r.err().map(|e| failure(t.scheme(), t.to_string(), e))
        });
        let ping = async {
            let p = self.pings.end(report)?;
            let r = sender.ping(&p.url, p.body).await;
            r.err().map(|e| failure("ping", host_of(&p.url), e))
        };
        let (mut failed, ping): (Vec<_>, _) = futures_util::join!(join_all(sends), ping);
        failed.push(ping);
        failed.into_iter().flatten().collect()
    }
}

fn failure(scheme: &str, target: String, e: anyhow::Error) -> NotifyFailure {
    let error = format!("{e:#}");
    tracing::warn!(scheme, to = %target, error = %error, "notification failed (the run's result stands)");
    NotifyFailure {
        scheme: scheme.into(),
        target,
        error,
    }
}

#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    fn report(result: Outcome) -> RunReport {
        let mut r = RunReport::start();
        r.project = "shop".into();
        r.finish(
            result,
            (result != Outcome::Success).then(|| "disk full".into()),
        )
    }

    #[test]
    fn healthchecks_protocol() {
        let p = Pings {
            base: Some(Url::parse("https://hc.example/ping/abc-123/").unwrap()),
            ..Default::default()
        };
        assert_eq!(
            p.start().unwrap().url.as_str(),
            "https://hc.example/ping/abc-123/start"
        );
        let ok = p.end(&report(Outcome::Success)).unwrap();
        assert_eq!(ok.url.as_str(), "https://hc.example/ping/abc-123/");
        let fail = p.end(&report(Outcome::Partial)).unwrap();
        assert_eq!(fail.url.as_str(), "https://hc.example/ping/abc-123/fail");
        assert!(fail.body.unwrap().contains("Reason: disk full"));
    }

    #[test]
    fn overrides_are_plain_gets() {
        let p = Pings {
            base: None,
            success: Some(Url::parse("https://kuma.example/api/push/T?status=up").unwrap()),
            failure: Some(Url::parse("https://kuma.example/api/push/T?status=down").unwrap()),
        };
        assert_eq!(p.start(), None);
        let ok = p.end(&report(Outcome::Success)).unwrap();
        assert_eq!((ok.url.query(), ok.body), (Some("status=up"), None));
        let bad = p.end(&report(Outcome::Failed)).unwrap();
        assert_eq!(bad.url.query(), Some("status=down"));
    }

    fn webhook_notifier(addr: std::net::SocketAddr, template: Option<&str>) -> Notifier {
        Notifier {
            targets: target::parse_list(&format!("http://{addr}/hook")).unwrap(),
            on: NotifyOn::Always,
            pings: Pings::default(),
            template: template.map(|t| Template::parse(t).unwrap()),
        }
    }

    /// `NOTIFY_TEMPLATE` writes the title and body every receiver sends
    /// (here the webhook's `title` and `text`, beside the report's fields).
    #[tokio::test]
    async fn a_template_writes_the_title_and_the_body() {
        let rx = testing::Receiver::start(vec![(200, "")]);
        let n = webhook_notifier(
            rx.addr,
            Some(
                "{{ project }}: {{ result }}\n\n{{ reason or 'all good' }} ({{ dumps | length }} dumps)",
            ),
        );
        assert_eq!(n.finished(&report(Outcome::Failed)).await, vec![]);
        let body = rx.seen()[0].json();
        assert_eq!(body["title"], "shop: failed");
        assert_eq!(body["text"], "disk full (0 dumps)");
        assert_eq!(body["project"], "shop");
        assert_eq!(body["reason"], "disk full");
    }

    /// A template that fails while rendering (here: a filter given the wrong
    /// type) does not leave the run untold: the default message goes out.
    #[tokio::test]
    async fn a_template_that_fails_to_render_sends_the_default_message() {
        let rx = testing::Receiver::start(vec![(200, "")]);
        let n = webhook_notifier(rx.addr, Some("{{ project | round }}"));
        let r = report(Outcome::Failed);
        assert_eq!(n.finished(&r).await, vec![]);
        let body = rx.seen()[0].json();
        assert_eq!(body["title"], message::title(&r));
        assert_eq!(body["text"], message::text(&r));
    }
}
