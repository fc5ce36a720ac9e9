//! ntfy (`ntfy://`, `ntfys://`): the text as the body, the title, priority and
//! tags as headers.

use reqwest::{Client, RequestBuilder};
use url::Url;

use super::message::Told;
use crate::env::Secret;

/// The request that POSTs `m` to the ntfy topic `url` (`http(s)://host/topic`),
/// with basic auth when given.
pub fn request(
    http: &Client,
    url: &Url,
    auth: Option<&(String, Secret)>,
    m: &Told,
) -> RequestBuilder {
    let req = http
        .post(url.clone())
        .header("Title", &m.title)
        .header("Priority", m.priority.to_string())
        .header(
            "Tags",
            if m.ok {
                "white_check_mark"
            } else {
                "rotating_light"
            },
        )
        .body(m.text.clone());
    match auth {
        Some((user, pw)) => req.basic_auth(user, Some(pw.expose())),
        None => req,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_and_auth_in_headers_text_as_body() {
        let m = Told::sample(false);
        let r = request(
            &crate::notify::send::client().unwrap(),
            &Url::parse("http://ntfy.lan/backups").unwrap(),
            Some(&("me".into(), Secret::new("pw"))),
            &m,
        )
        .build()
        .unwrap();
        assert_eq!(r.url().as_str(), "http://ntfy.lan/backups");
        assert_eq!(r.headers()["title"], m.title.as_str());
        assert_eq!(r.headers()["priority"], "5");
        assert_eq!(r.headers()["authorization"], "Basic bWU6cHc=");
        assert_eq!(r.body().unwrap().as_bytes().unwrap(), m.text.as_bytes());
    }
}
