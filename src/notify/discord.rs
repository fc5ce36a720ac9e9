//! Discord (`discord://token@webhookid`): a webhook message.

use anyhow::{Context, Result};
use reqwest::{Client, RequestBuilder};
use serde_json::json;
use url::Url;

use super::message::Told;
use crate::env::Secret;

/// The request that POSTs `m` to the Discord webhook
/// `https://discord.com/api/webhooks/<id>/<token>` as `{"content": …}`.
pub fn request(http: &Client, id: &str, token: &Secret, m: &Told) -> Result<RequestBuilder> {
    let url = Url::parse(&format!(
        "https://discord.com/api/webhooks/{id}/{}",
        token.expose()
    ))
    .context("bad discord webhook id or token")?;
    Ok(http
        .post(url)
        .json(&json!({"content": format!("**{}**\n{}", m.title, m.text)})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_url_and_content() {
        let m = Told::sample(true);
        let r = request(
            &crate::notify::send::client().unwrap(),
            "1234",
            &Secret::new("tok"),
            &m,
        )
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(
            r.url().as_str(),
            "https://discord.com/api/webhooks/1234/tok"
        );
        let body: serde_json::Value =
            serde_json::from_slice(r.body().unwrap().as_bytes().unwrap()).unwrap();
        assert!(
            body["content"]
                .as_str()
                .unwrap()
                .starts_with(&format!("**{}**\n", m.title))
        );
    }
}
