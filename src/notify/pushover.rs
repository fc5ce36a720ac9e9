//! Pushover (`pushover://shoutrrr:<app token>@<user key>/?devices=…`): a
//! form POST to the messages API.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, RequestBuilder};

use super::message::Told;
use crate::env::Secret;

/// Pushover's messages API.
const API: &str = "https://api.pushover.net/1/messages.json";

/// The request that POSTs `m` to Pushover's messages API as a form:
/// `token`, `user`, `title`, `message`, `priority` (the item's, else 0 for a
/// success and 1, high, otherwise) and `device` (the devices, comma-separated;
/// left out for every device).
pub fn request(
    http: &Client,
    token: &Secret,
    user: &Secret,
    devices: &[String],
    priority: Option<i8>,
    m: &Told,
) -> RequestBuilder {
    let priority = priority.unwrap_or(if m.ok { 0 } else { 1 });
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("token", token.expose())
        .append_pair("user", user.expose())
        .append_pair("title", &m.title)
        .append_pair("message", &m.text)
        .append_pair("priority", &priority.to_string());
    if !devices.is_empty() {
        form.append_pair("device", &devices.join(","));
    }
    http.post(API)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form.finish())
}

#[cfg(test)]
mod tests {
    use crate::config::notify::parse;
    use crate::notify::message::Told;
    use crate::notify::send::Sender;
    use crate::notify::testing::{Receiver, report};
    use crate::report::Outcome;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A form POST to `/1/messages.json` with the token, the user key, the
    /// title, the message, priority 1 for a failure and the devices.
    #[tokio::test]
    async fn a_form_post_with_token_user_and_devices() {
        let rx = Receiver::start(vec![(200, r#"{"status":1,"request":"r"}"#)]);
        let t = parse("pushover://shoutrrr:aTok@uKey/?devices=phone,tab").unwrap();
        let r = report(Outcome::Failed);
        Sender::to(rx.addr)
            .send(&t, &r, &Told::of(&r))
            .await
            .unwrap();
        let m = Told::of(&r);
        let [s] = rx.seen().try_into().unwrap();
        assert_eq!(
            (s.method.as_str(), s.target.as_str()),
            ("POST", "/1/messages.json")
        );
        assert_eq!(
            s.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            s.form(),
            pairs(&[
                ("token", "aTok"),
                ("user", "uKey"),
                ("title", &m.title),
                ("message", &m.text),
                ("priority", "1"),
                ("device", "phone,tab"),
            ])
        );
    }

    /// The item's priority wins; no `devices=` sends no `device` (every device).
    #[tokio::test]
    async fn the_items_priority_and_every_device() {
        let rx = Receiver::start(vec![(200, r#"{"status":1}"#)]);
        let t = parse("pushover://shoutrrr:aTok@uKey/?priority=-1").unwrap();
        let r = report(Outcome::Success);
        Sender::to(rx.addr)
            .send(&t, &r, &Told::of(&r))
            .await
            .unwrap();
        let m = Told::of(&r);
        let [s] = rx.seen().try_into().unwrap();
        assert_eq!(
            s.form(),
            pairs(&[
                ("token", "aTok"),
                ("user", "uKey"),
                ("title", &m.title),
                ("message", &m.text),
                ("priority", "-1"),
            ])
        );
    }
}
