//! A Microsoft Teams workflow (`teams+https://<the workflow's URL>`, Power
//! Automate's "Post to a channel when a webhook request is received"): an
//! Adaptive Card, the title in bold above the text.

use anyhow::{Context, Result};
use reqwest::{Client, RequestBuilder};
use serde_json::{Value, json};
use url::Url;

use super::message::Told;
use crate::env::Secret;

/// The message a workflow posts: one Adaptive Card (version 1.4) with the
/// title in bold and the text, wrapped.
pub fn card(m: &Told) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": m.title, "weight": "Bolder"},
                    {"type": "TextBlock", "text": m.text, "wrap": true},
                ],
            },
        }],
    })
}

/// The request that POSTs `m`'s [`card`] as JSON to the workflow's URL
/// (its query, with the signature `sig=`, kept as written).
pub fn request(http: &Client, url: &Secret, m: &Told) -> Result<RequestBuilder> {
    let url = Url::parse(url.expose()).context("bad teams workflow URL")?;
    Ok(http.post(url).json(&card(m)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::config::notify::parse;
    use crate::notify::message::Told;
    use crate::notify::send::Sender;
    use crate::notify::testing::{Receiver, report};
    use crate::report::Outcome;

    /// The Adaptive Card goes to the workflow's path with its query (the
    /// signature) exactly as written.
    #[tokio::test]
    async fn an_adaptive_card_to_the_workflows_url() {
        let rx = Receiver::start(vec![(202, "")]);
        let t = parse(
            "teams+https://prod-1.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SiGn",
        )
        .unwrap();
        let r = report(Outcome::Partial);
        Sender::to(rx.addr)
            .send(&t, &r, &Told::of(&r))
            .await
            .unwrap();
        let m = Told::of(&r);
        let [s] = rx.seen().try_into().unwrap();
        assert_eq!(s.method, "POST");
        assert_eq!(
            s.target,
            "/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SiGn"
        );
        assert_eq!(s.header("content-type"), Some("application/json"));
        assert_eq!(
            s.json(),
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": m.title, "weight": "Bolder"},
                            {"type": "TextBlock", "text": m.text, "wrap": true}
                        ]
                    }
                }]
            })
        );
    }
}
