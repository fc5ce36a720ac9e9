//! Telegram (`telegram://<bot token>@telegram?chats=…`): the bot's
//! `sendMessage`, once per chat, as plain text (no `parse_mode`: the report
//! is not escaped for Telegram's HTML or Markdown, and a stray `<` or `_`
//! would make Telegram refuse the message).

use anyhow::{Context, Result};
use reqwest::{Client, RequestBuilder};
use serde_json::json;
use url::Url;

use super::message::Told;
use super::target::TelegramChat;
use crate::env::Secret;

/// The requests that POST `m` to each chat through the Bot API,
/// `https://api.telegram.org/bot<token>/sendMessage` with JSON `{chat_id,
/// text[, message_thread_id]}`, each with the chat's id (for errors).
pub fn requests(
    http: &Client,
    token: &Secret,
    chats: &[TelegramChat],
    m: &Told,
) -> Result<Vec<(String, RequestBuilder)>> {
    let url = Url::parse(&format!(
        "https://api.telegram.org/bot{}/sendMessage",
        token.expose()
    ))
    .context("bad telegram bot token")?;
    let text = format!("{}\n{}", m.title, m.text);
    Ok(chats
        .iter()
        .map(|c| {
            let mut body = json!({"chat_id": c.id, "text": text});
            if let Some(t) = c.thread {
                body["message_thread_id"] = t.into();
            }
            (c.id.clone(), http.post(url.clone()).json(&body))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::config::notify::parse;
    use crate::notify::message::Told;
    use crate::notify::send::Sender;
    use crate::notify::testing::{Receiver, report};
    use crate::report::Outcome;

    /// Each chat gets the Bot API's `sendMessage`: the token in the path,
    /// JSON `chat_id` and `text` (no `parse_mode`), a topic's id for `chat:topic`.
    #[tokio::test]
    async fn one_send_message_per_chat_as_plain_text() {
        let rx = Receiver::start(vec![(200, r#"{"ok":true}"#); 2]);
        let t = parse("telegram://123456:ABC-def@telegram?chats=@chan,-1001234:7").unwrap();
        let r = report(Outcome::Failed);
        Sender::to(rx.addr)
            .send(&t, &r, &Told::of(&r))
            .await
            .unwrap();
        let m = Told::of(&r);
        let text = format!("{}\n{}", m.title, m.text);
        let seen = rx.seen();
        assert_eq!(seen.len(), 2);
        for s in &seen {
            assert_eq!(s.method, "POST");
            assert_eq!(s.target, "/bot123456:ABC-def/sendMessage");
            assert_eq!(s.header("content-type"), Some("application/json"));
        }
        assert_eq!(seen[0].json(), json!({"chat_id": "@chan", "text": text}));
        assert_eq!(
            seen[1].json(),
            json!({"chat_id": "-1001234", "message_thread_id": 7, "text": text})
        );
    }

    /// A chat Telegram refuses is named in the error, the others are told,
    /// and the token is nowhere in it.
    #[tokio::test]
    async fn a_refused_chat_is_named_without_the_token() {
        let rx = Receiver::start(vec![
            (
                400,
                r#"{"ok":false,"description":"Bad Request: chat not found"}"#,
            ),
            (200, r#"{"ok":true}"#),
        ]);
        let t = parse("telegram://123456:ABC-def@telegram?chats=-1,-2").unwrap();
        let r = report(Outcome::Failed);
        let e = Sender::to(rx.addr)
            .send(&t, &r, &Told::of(&r))
            .await
            .unwrap_err();
        let e = format!("{e:#}");
        assert!(e.starts_with("1 of 2 chats not told: -1: "), "{e}");
        assert!(e.contains("HTTP 400"), "{e}");
        assert!(!e.contains("ABC-def"), "{e}");
        assert_eq!(rx.seen().len(), 2);
    }
}
