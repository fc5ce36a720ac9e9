//! Gotify (`gotify://host/token`): JSON `{title, message, priority}` to
//! `/message`, the application token in `X-Gotify-Key` (not in the URL, so
//! it stays out of proxies' logs).

use reqwest::{Client, RequestBuilder};
use serde_json::json;
use url::Url;

use super::message::Told;
use crate::env::Secret;

/// The request that POSTs `m` as JSON to the Gotify message endpoint `url`
/// (`http(s)://host[/path]/message`), the token in `X-Gotify-Key`.
pub fn request(http: &Client, url: &Url, token: &Secret, m: &Told) -> RequestBuilder {
    http.post(url.clone())
        .header("X-Gotify-Key", token.expose())
        .json(&json!({"title": m.title, "message": m.text, "priority": m.priority}))
}
