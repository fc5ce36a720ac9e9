//! Gotify (`gotify://host/token`): JSON `{title, message, priority}` to
//! `/message`, the application token in `X-Gotify-Key` (not in the URL, so
//! it stays out of proxies' logs).

use reqwest::{Client, RequestBuilder};
use serde_json::json;
use url::Url;

use super::message::Told;
use crate::env::Secret;

/// `POST url` (`http(s)://host[/path]/message`).
pub fn request(http: &Client, url: &Url, token: &Secret, m: &Told) -> RequestBuilder {
    http.post(url.clone())
        .header("X-Gotify-Key", token.expose())
        .json(&json!({"title": m.title, "message": m.text, "priority": m.priority}))
}
