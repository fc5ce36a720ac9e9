//! The Apprise API (`apprise://host/key`, `apprises://` for HTTPS): the
//! message to a stored configuration's `/notify/<key>`, which tells every
//! service that configuration lists.

use reqwest::{Client, RequestBuilder};
use serde_json::json;
use url::Url;

use super::message::Told;
use crate::env::Secret;
use crate::report::Outcome;

/// Apprise's notification type for a run's result: `success`, `warning`
/// (partial) or `failure`.
pub fn kind(result: Outcome) -> &'static str {
    match result {
        Outcome::Success => "success",
        Outcome::Partial => "warning",
        Outcome::Failed => "failure",
    }
}

/// The request that POSTs `m` as JSON `{title, body, type}` to `url`
/// (`http(s)://host[:port][/path]/notify/<key>`), with basic auth when given.
pub fn request(
    http: &Client,
    url: &Url,
    auth: Option<&(String, Secret)>,
    m: &Told,
) -> RequestBuilder {
    let req = http.post(url.clone()).json(&json!({
        "title": m.title,
        "body": m.text,
        "type": kind(m.result),
    }));
    match auth {
        Some((user, pw)) => req.basic_auth(user, Some(pw.expose())),
        None => req,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::kind;
    use crate::config::notify::parse;
    use crate::notify::message::Told;
    use crate::notify::send::Sender;
    use crate::notify::testing::{Receiver, report};
    use crate::report::Outcome;

    /// `POST <path>/notify/<key>` with JSON `title`, `body`, `type`, and basic
    /// auth: sent to the item's own host and port (no redirect).
    #[tokio::test]
    async fn title_body_and_type_to_the_keys_notify() {
        let rx = Receiver::start(vec![(200, "")]);
        let port = rx.addr.port();
        let t = parse(&format!("apprise://u:pw@127.0.0.1:{port}/prefix/backups")).unwrap();
        let r = report(Outcome::Partial);
        Sender::new()
            .unwrap()
            .send(&t, &r, &Told::of(&r))
            .await
            .unwrap();
        let m = Told::of(&r);
        let [s] = rx.seen().try_into().unwrap();
        assert_eq!(
            (s.method.as_str(), s.target.as_str()),
            ("POST", "/prefix/notify/backups")
        );
        assert_eq!(s.header("content-type"), Some("application/json"));
        assert_eq!(s.header("authorization"), Some("Basic dTpwdw=="));
        assert_eq!(
            s.json(),
            json!({"title": m.title, "body": m.text, "type": "warning"})
        );
    }

    #[test]
    fn the_type_says_the_result() {
        assert_eq!(kind(Outcome::Success), "success");
        assert_eq!(kind(Outcome::Partial), "warning");
        assert_eq!(kind(Outcome::Failed), "failure");
    }
}
