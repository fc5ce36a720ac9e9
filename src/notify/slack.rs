//! Slack (`slack://T…/B…/secret`): an incoming webhook message.

use anyhow::{Context, Result};
use reqwest::{Client, RequestBuilder};
use serde_json::json;
use url::Url;

use super::message::Told;
use crate::env::Secret;

/// The request that POSTs `m` to the Slack incoming webhook
/// `https://hooks.slack.com/services/T…/B…/secret` as `{"text": …}`.
pub fn request(http: &Client, path: &Secret, m: &Told) -> Result<RequestBuilder> {
    let url = Url::parse(&format!(
        "https://hooks.slack.com/services/{}",
        path.expose()
    ))
    .context("bad slack webhook path")?;
    Ok(http
        .post(url)
        .json(&json!({"text": format!("*{}*\n{}", m.title, m.text)})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_url_and_text() {
        let m = Told::sample(false);
        let r = request(
            &crate::notify::send::client().unwrap(),
            &Secret::new("T1/B2/sec"),
            &m,
        )
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(
            r.url().as_str(),
            "https://hooks.slack.com/services/T1/B2/sec"
        );
        let body: serde_json::Value =
            serde_json::from_slice(r.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(body["text"], format!("*{}*\n{}", m.title, m.text));
    }
}
