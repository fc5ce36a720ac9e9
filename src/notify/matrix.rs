//! Matrix (`matrix://:<access token>@host/?rooms=…`, or `user:password@`
//! to log in first): an `m.text` message in each room, through the
//! client-server API (v3), the token as `Authorization: Bearer`.
//!
//! As shoutrrr does it: a password login asks for one device (`stackshot`,
//! or `deviceID=`) so that each run's login replaces the last; a room alias
//! (`#room:server`) is joined, which gives its room id and accepts an invite;
//! no `rooms=` means every room the account has joined.

use anyhow::{Context, Result, anyhow, bail};
use reqwest::{Client, RequestBuilder};
use serde_json::{Value, json};
use url::Url;

use super::message::Told;
use super::target::MatrixLogin;
use crate::env::Secret;

/// `s` as one path segment: everything but `A-Z a-z 0-9 - . _ ~`
/// percent-encoded (a room id's `!` and `:`, an alias's `#`).
pub fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `base` with the client-server API's `path` (`/_matrix/client/v3…`).
fn api(base: &Url, path: &str) -> Result<Url> {
    let base = base.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/_matrix/client/v3{path}")).context("bad matrix homeserver URL")
}

/// The password login: `POST /login` with `m.login.password`, the user, the
/// password and the device id.
pub fn login_request(
    http: &Client,
    base: &Url,
    user: &str,
    password: &Secret,
    device: &str,
) -> Result<RequestBuilder> {
    Ok(http.post(api(base, "/login")?).json(&json!({
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password.expose(),
        "device_id": device,
    })))
}

/// The rooms the account has joined: `GET /joined_rooms`.
pub fn joined_request(http: &Client, base: &Url, token: &Secret) -> Result<RequestBuilder> {
    Ok(http
        .get(api(base, "/joined_rooms")?)
        .bearer_auth(token.expose()))
}

/// Joining a room by alias (or id): `POST /join/{room}`, an empty JSON body.
pub fn join_request(
    http: &Client,
    base: &Url,
    token: &Secret,
    room: &str,
) -> Result<RequestBuilder> {
    let url = api(base, &format!("/join/{}", segment(room)))?;
    Ok(http.post(url).bearer_auth(token.expose()).json(&json!({})))
}

/// The message: `PUT /rooms/{room id}/send/m.room.message/{txn}` with
/// `{msgtype: "m.text", body}`, the title on the first line.
pub fn send_request(
    http: &Client,
    base: &Url,
    token: &Secret,
    room_id: &str,
    txn: &str,
    m: &Told,
) -> Result<RequestBuilder> {
    let path = format!(
        "/rooms/{}/send/m.room.message/{}",
        segment(room_id),
        segment(txn)
    );
    Ok(http
        .put(api(base, &path)?)
        .bearer_auth(token.expose())
        .json(&json!({"msgtype": "m.text", "body": format!("{}\n{}", m.title, m.text)})))
}

/// Sends `req` and reads its JSON answer; an error status is an error
/// naming Matrix's `errcode` when it gave one (never the URL: it may hold a
/// room's name, and reqwest's errors would show it).
async fn call(req: RequestBuilder) -> Result<Value> {
    let resp = req.send().await.map_err(|e| anyhow!(e.without_url()))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        match body["errcode"].as_str() {
            Some(code) => bail!("the homeserver answered HTTP {status} ({code})"),
            None => bail!("the homeserver answered HTTP {status}"),
        }
    }
    Ok(body)
}

/// A string field of a JSON answer, or an error naming it.
fn field(v: &Value, name: &str) -> Result<String> {
    v[name]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the homeserver's answer has no {name}"))
}

/// Tells `rooms` (every joined room when empty) on the homeserver `base`,
/// logging in first for a password login; the transaction ids are `txn-0`,
/// `txn-1`… (`txn` must differ between runs: a homeserver drops a message
/// whose id it has seen). Every room is tried; the error lists the failed ones.
pub async fn send(
    http: &Client,
    base: &Url,
    login: &MatrixLogin,
    rooms: &[String],
    txn: &str,
    m: &Told,
) -> Result<()> {
    let token = match login {
        MatrixLogin::Token(t) => t.clone(),
        MatrixLogin::Password {
            user,
            password,
            device,
        } => {
            let v = call(login_request(http, base, user, password, device)?)
                .await
                .context("cannot log in")?;
            Secret::new(field(&v, "access_token")?)
        }
    };
    let rooms: Vec<String> = if rooms.is_empty() {
        let v = call(joined_request(http, base, &token)?)
            .await
            .context("cannot list the joined rooms")?;
        let joined = v["joined_rooms"].as_array().cloned().unwrap_or_default();
        joined
            .iter()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect()
    } else {
        rooms.to_vec()
    };
    if rooms.is_empty() {
        bail!("the account has joined no room, and rooms= names none");
    }
    let mut failed = vec![];
    for (i, room) in rooms.iter().enumerate() {
        let sent = async {
            let id = if room.starts_with('!') {
                room.clone()
            } else {
                field(
                    &call(join_request(http, base, &token, room)?).await?,
                    "room_id",
                )?
            };
            call(send_request(
                http,
                base,
                &token,
                &id,
                &format!("{txn}-{i}"),
                m,
            )?)
            .await
        };
        if let Err(e) = sent.await {
            failed.push(format!("{room}: {e:#}"));
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} rooms not told: {}",
            failed.len(),
            rooms.len(),
            failed.join("; ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::notify::{Target, parse};
    use crate::notify::send::Sender;
    use crate::notify::testing::{Receiver, report};
    use crate::report::Outcome;

    fn item(raw: &str) -> (Url, MatrixLogin, Vec<String>) {
        let Target::Matrix { base, login, rooms } = parse(raw).unwrap() else {
            panic!()
        };
        (base, login, rooms)
    }

    /// The access-token form: a room id is sent to at once, an alias is
    /// joined first; ids and aliases are percent-encoded in the path, the
    /// token is a bearer token.
    #[tokio::test]
    async fn a_token_a_room_id_and_an_alias() {
        let rx = Receiver::start(vec![
            (200, r#"{"event_id":"$1"}"#),
            (200, r#"{"room_id":"!joined:m.lan"}"#),
            (200, r#"{"event_id":"$2"}"#),
        ]);
        let port = rx.addr.port();
        let (base, login, rooms) = item(&format!(
            "matrix://:syt_tok@127.0.0.1:{port}/?rooms=!abc:m.lan,alias:m.lan&disableTLS=yes"
        ));
        let m = Told::sample(false);
        send(&client(), &base, &login, &rooms, "run7", &m)
            .await
            .unwrap();
        let seen = rx.seen();
        let calls: Vec<(&str, &str)> = seen
            .iter()
            .map(|s| (s.method.as_str(), s.target.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                (
                    "PUT",
                    "/_matrix/client/v3/rooms/%21abc%3Am.lan/send/m.room.message/run7-0"
                ),
                ("POST", "/_matrix/client/v3/join/%23alias%3Am.lan"),
                (
                    "PUT",
                    "/_matrix/client/v3/rooms/%21joined%3Am.lan/send/m.room.message/run7-1"
                ),
            ]
        );
        for s in &seen {
            assert_eq!(s.header("authorization"), Some("Bearer syt_tok"));
            assert_eq!(s.header("content-type"), Some("application/json"));
        }
        let body = json!({"msgtype": "m.text", "body": format!("{}\n{}", m.title, m.text)});
        assert_eq!((seen[0].json(), seen[2].json()), (body.clone(), body));
        assert_eq!(seen[1].json(), json!({}));
    }

    /// The password form, no rooms: log in (`m.login.password`, the device
    /// `stackshot`), list the joined rooms, send with the new token; through
    /// the dispatch, whose transaction ids start `stackshot-`.
    #[tokio::test]
    async fn a_login_then_every_joined_room() {
        let rx = Receiver::start(vec![
            (
                200,
                r#"{"access_token":"fresh","user_id":"@bot:m.lan","device_id":"stackshot"}"#,
            ),
            (200, r#"{"joined_rooms":["!r1:m.lan"]}"#),
            (200, r#"{"event_id":"$1"}"#),
        ]);
        let port = rx.addr.port();
        let t = parse(&format!("matrix://bot:pw@127.0.0.1:{port}?disableTLS=yes")).unwrap();
        let r = report(Outcome::Failed);
        Sender::new()
            .unwrap()
            .send(&t, &r, &Told::of(&r))
            .await
            .unwrap();
        let seen = rx.seen();
        assert_eq!(
            (seen[0].method.as_str(), seen[0].target.as_str()),
            ("POST", "/_matrix/client/v3/login")
        );
        assert_eq!(seen[0].header("authorization"), None);
        assert_eq!(
            seen[0].json(),
            json!({
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "bot"},
                "password": "pw",
                "device_id": "stackshot",
            })
        );
        assert_eq!(
            (seen[1].method.as_str(), seen[1].target.as_str()),
            ("GET", "/_matrix/client/v3/joined_rooms")
        );
        assert_eq!(seen[1].header("authorization"), Some("Bearer fresh"));
        assert_eq!(seen[2].method, "PUT");
        let path = &seen[2].target;
        let txn = path
            .strip_prefix("/_matrix/client/v3/rooms/%21r1%3Am.lan/send/m.room.message/stackshot-")
            .unwrap_or_else(|| panic!("{path}"));
        assert!(txn.ends_with("-0"), "{path}");
        assert_eq!(seen[2].header("authorization"), Some("Bearer fresh"));
        let m = Told::of(&r);
        assert_eq!(seen[2].json()["body"], format!("{}\n{}", m.title, m.text));
    }

    /// A refused room is named with Matrix's errcode; the token is not.
    #[tokio::test]
    async fn a_refused_room_is_named_with_the_errcode() {
        let rx = Receiver::start(vec![(
            403,
            r#"{"errcode":"M_FORBIDDEN","error":"not in room"}"#,
        )]);
        let port = rx.addr.port();
        let (base, login, rooms) = item(&format!(
            "matrix://:syt_tok@127.0.0.1:{port}/?rooms=!abc:m.lan&disableTLS=yes"
        ));
        let e = send(&client(), &base, &login, &rooms, "t", &Told::sample(false))
            .await
            .unwrap_err();
        let e = format!("{e:#}");
        assert_eq!(
            e,
            "1 of 1 rooms not told: !abc:m.lan: the homeserver answered HTTP 403 Forbidden (M_FORBIDDEN)"
        );
        rx.seen();
    }

    fn client() -> Client {
        crate::notify::send::client().unwrap()
    }
}
