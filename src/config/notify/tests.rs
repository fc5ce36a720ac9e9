//! The `NOTIFY_URLS` parser's tests: every scheme, defaults, masking, bad items.

use super::*;

#[test]
fn every_scheme() {
    let t = parse_list(
        "https://hooks.example/x?key=abc, ntfy://me:pw@ntfy.lan:8080/backups,ntfys://ntfy.example/b,\
         gotify://gotify.example/sub/AppTok,discord://tok@123456,slack://T1/B2/sec,\
         smtp://u:p%40ss@mail.example:2525/?from=bk@example.org&to=a@example.org,b@example.org&starttls=yes",
    )
    .unwrap();
    assert_eq!(
        t.iter().map(Target::scheme).collect::<Vec<_>>(),
        [
            "https", "ntfy", "ntfy", "gotify", "discord", "slack", "smtp"
        ]
    );
    let Target::Ntfy { url, auth } = &t[1] else {
        panic!()
    };
    assert_eq!(url.as_str(), "http://ntfy.lan:8080/backups");
    let (user, pw) = auth.as_ref().unwrap();
    assert_eq!((user.as_str(), pw.expose()), ("me", "pw"));
    let Target::Ntfy { url, auth } = &t[2] else {
        panic!()
    };
    assert_eq!(
        (url.as_str(), auth.is_none()),
        ("https://ntfy.example/b", true)
    );
    let Target::Gotify { url, token } = &t[3] else {
        panic!()
    };
    assert_eq!(
        (url.as_str(), token.expose()),
        ("https://gotify.example/sub/message", "AppTok")
    );
    let Target::Discord { id, token } = &t[4] else {
        panic!()
    };
    assert_eq!((id.as_str(), token.expose()), ("123456", "tok"));
    let Target::Slack { path } = &t[5] else {
        panic!()
    };
    assert_eq!(path.expose(), "T1/B2/sec");
    let Target::Smtp {
        host,
        port,
        security,
        auth,
        from,
        to,
    } = &t[6]
    else {
        panic!()
    };
    assert_eq!(
        (host.as_str(), *port, *security),
        ("mail.example", 2525, SmtpSecurity::StartTls)
    );
    assert_eq!(auth.as_ref().unwrap().1.expose(), "p@ss");
    assert_eq!(from, "bk@example.org");
    assert_eq!(to, &["a@example.org", "b@example.org"]);
}

#[test]
fn defaults_and_plain_http_gotify() {
    let Target::Smtp { port, security, .. } =
        parse("smtps://mail.example/?from=a@b.c&to=d@e.f").unwrap()
    else {
        panic!()
    };
    assert_eq!((port, security), (465, SmtpSecurity::Tls));
    let Target::Smtp { port, security, .. } =
        parse("smtp://127.0.0.1/?from=a@b.c&to=d@e.f").unwrap()
    else {
        panic!()
    };
    assert_eq!((port, security), (25, SmtpSecurity::Plain));
    let Target::Gotify { url, .. } = parse("gotify://g.lan:8000/T?disabletls=yes").unwrap() else {
        panic!()
    };
    assert_eq!(url.as_str(), "http://g.lan:8000/message");
}

/// A receiver's secret in its path (a Slack or Home Assistant webhook
/// given as a plain https:// one, an ntfy topic, a Gotify path) or its
/// query never reaches a log line: only the scheme, host and port do.
#[test]
fn shown_receivers_keep_only_scheme_host_and_port() {
    for (raw, shown) in [
        (
            "https://hooks.slack.com/services/T1/B2/sekret1",
            "https://hooks.slack.com/…",
        ),
        (
            "https://ha.lan:8123/api/webhook/sekret2",
            "https://ha.lan:8123/…",
        ),
        (
            "https://hooks.example/x?key=sekret3",
            "https://hooks.example/…",
        ),
        ("ntfy://ntfy.lan/sekret4-topic", "ntfy http://ntfy.lan/…"),
        ("ntfys://me:sekret5@ntfy.lan/t", "ntfy https://ntfy.lan/…"),
        (
            "gotify://gotify.lan/sekret6path/AppTok",
            "gotify https://gotify.lan/…",
        ),
        ("https://plain.example", "https://plain.example"),
    ] {
        let t = parse(raw).unwrap();
        let text = format!("{t} {t:?}");
        assert!(text.contains(shown), "{raw}: {text}");
        assert!(!text.contains("sekret"), "{raw}: {text}");
        assert!(!text.contains("AppTok"), "{raw}: {text}");
    }
    // A bad item: the same, and nothing of an item that is no URL.
    for raw in ["ftp://host/sekret7", "ntfy://sekret8:pw@host", "sekret9"] {
        let e = parse(raw).map(|_| ()).unwrap_err().to_string();
        assert!(!e.contains("sekret"), "{raw}: {e}");
    }
}

#[test]
fn bad_items_are_one_line_with_the_password_masked() {
    for (raw, want) in [
        ("ftp://me:hunter2@x/y", "ftp://x/…: unknown scheme \"ftp\""),
        ("ntfy://me:hunter2@x", "ntfy://x/…: expected one topic"),
        (
            "smtp://me:hunter2@mail/?to=a@b.c",
            "smtp://mail/…: needs exactly one from=address",
        ),
        ("smtp://mail/?from=a@b.c", "smtp://mail/…: needs to=address"),
        (
            "smtp://mail/?from=nope&to=a@b.c",
            "\"nope\" is not an email address",
        ),
        ("discord://123456", "no webhook token"),
        ("slack://T1/B2", "expected slack://"),
        ("gotify://host", "no application token"),
        ("hunter2", "…: not a URL"),
    ] {
        let e = parse_list(raw).unwrap_err().to_string();
        assert!(e.contains(want), "{raw}: {e}");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(!e.contains('\n'));
    }
}

#[test]
fn display_and_debug_hide_secrets() {
    for raw in [
        "https://h.example/x?token=hunter2",
        "ntfy://me:hunter2@h/t",
        "gotify://h/hunter2",
        "discord://hunter2@1",
        "slack://T/B/hunter2",
        "smtp://u:hunter2@h/?from=a@b.c&to=d@e.f",
    ] {
        let t = parse(raw).unwrap();
        assert!(!format!("{t} {t:?}").contains("hunter2"), "{t}");
    }
}

/// The five chat and push services, in shoutrrr's forms.
#[test]
fn chat_and_push_services() {
    let t = parse_list(
        "telegram://123456:ABC-def_1@telegram?chats=@my_chan,-1001234:7,\
         telegram://42:x@telegram?channels=99,\
         matrix://:syt_tok@matrix.example.org/?rooms=!abc:example.org,alias:example.org,%23other:x,\
         matrix://bot:pw@m.lan:8008?disableTLS=yes&deviceID=box,\
         pushover://shoutrrr:aTok@uKeyMixedCase/?devices=phone,tab&priority=-1,\
         teams+https://prod-1.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SiGn,\
         apprise://apprise.lan:8000/backups,apprises://u:p@a.example/prefix/k",
    )
    .unwrap();
    assert_eq!(
        t.iter().map(Target::scheme).collect::<Vec<_>>(),
        [
            "telegram", "telegram", "matrix", "matrix", "pushover", "teams", "apprise", "apprise"
        ]
    );
    let Target::Telegram { token, chats } = &t[0] else {
        panic!()
    };
    assert_eq!(token.expose(), "123456:ABC-def_1");
    assert_eq!(
        chats,
        &[
            TelegramChat {
                id: "@my_chan".into(),
                thread: None
            },
            TelegramChat {
                id: "-1001234".into(),
                thread: Some(7)
            }
        ]
    );
    let Target::Telegram { chats, .. } = &t[1] else {
        panic!()
    };
    assert_eq!(chats[0].id, "99");
    let Target::Matrix { base, login, rooms } = &t[2] else {
        panic!()
    };
    assert_eq!(base.as_str(), "https://matrix.example.org/");
    assert_eq!(login, &MatrixLogin::Token(Secret::new("syt_tok")));
    assert_eq!(
        rooms,
        &["!abc:example.org", "#alias:example.org", "#other:x"]
    );
    let Target::Matrix { base, login, rooms } = &t[3] else {
        panic!()
    };
    assert_eq!((base.as_str(), rooms.len()), ("http://m.lan:8008/", 0));
    assert_eq!(
        login,
        &MatrixLogin::Password {
            user: "bot".into(),
            password: Secret::new("pw"),
            device: "box".into()
        }
    );
    let Target::Pushover {
        token,
        user,
        devices,
        priority,
    } = &t[4]
    else {
        panic!()
    };
    // The user key's case is kept: Pushover's keys are case-sensitive.
    assert_eq!((token.expose(), user.expose()), ("aTok", "uKeyMixedCase"));
    assert_eq!(
        (devices, *priority),
        (&vec!["phone".to_string(), "tab".into()], Some(-1))
    );
    let Target::Teams { host, url } = &t[5] else {
        panic!()
    };
    assert_eq!(host, "prod-1.westeurope.logic.azure.com");
    assert_eq!(
        url.expose(),
        "https://prod-1.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SiGn"
    );
    let Target::Apprise { url, auth } = &t[6] else {
        panic!()
    };
    assert_eq!(
        (url.as_str(), auth.is_none()),
        ("http://apprise.lan:8000/notify/backups", true)
    );
    let Target::Apprise { url, auth } = &t[7] else {
        panic!()
    };
    assert_eq!(url.as_str(), "https://a.example/prefix/notify/k");
    assert_eq!(auth.as_ref().unwrap().1.expose(), "p");
}

#[test]
fn chat_and_push_defaults() {
    let Target::Matrix { login, .. } = parse("matrix://bot:pw@m.lan/?rooms=!a:b").unwrap() else {
        panic!()
    };
    let MatrixLogin::Password { device, .. } = login else {
        panic!()
    };
    assert_eq!(device, "stackshot");
    let Target::Pushover {
        devices, priority, ..
    } = parse("pushover://shoutrrr:tok@ukey").unwrap()
    else {
        panic!()
    };
    assert_eq!((devices.len(), priority), (0, None));
}

#[test]
fn bad_chat_and_push_items_are_one_line_naming_the_form() {
    for (raw, want) in [
        (
            "telegram://hunter2@telegram?chats=1",
            "telegram://telegram/…: the bot token is not <digits>:<letters, digits, _ or ->: telegram://<bot token>@telegram?chats=",
        ),
        ("telegram://12:hunter2@telegram", "no chats=: telegram://"),
        (
            "telegram://12:hunter2@telegram?chats=someone",
            "chat \"someone\" is neither a chat id (-100…) nor an @channel name",
        ),
        (
            "telegram://12:hunter2@telegram?chats=-100:general",
            "chat \"-100:general\": the topic after ':' is not a number",
        ),
        (
            "matrix://m.lan/?rooms=!a:b",
            "matrix://m.lan/…: no access token or password: matrix://:<access token>@host",
        ),
        ("matrix://bot@m.lan", "no access token or password"),
        (
            "matrix://:hunter2@m.lan/?rooms=#alias:m.lan",
            "a room alias's # must be written %23 (or left out)",
        ),
        (
            "pushover://ukey/?devices=a",
            "pushover://…: no application token: pushover://shoutrrr:<app token>@<user key>/",
        ),
        (
            "pushover://shoutrrr:hunter2@ukey/?priority=2",
            "priority 2 (emergency) needs retry= and expire=",
        ),
        (
            "pushover://shoutrrr:hunter2@ukey/?priority=high",
            "priority \"high\" is not -2, -1, 0 or 1",
        ),
        (
            "pushover://shoutrrr:tok@hunter2key/?priority=9",
            "pushover://…: priority \"9\"",
        ),
        (
            "teams://hunter2@tenant/alt/owner/extra?host=x.webhook.office.com",
            "teams:// is for Office 365 connectors, which Microsoft retired; give a workflow's URL: teams+https://",
        ),
        (
            "teams+http://flow.example/x?sig=hunter2",
            "a workflow's URL is https: teams+https://",
        ),
        (
            "apprise://apprise.lan/",
            "apprise://apprise.lan: no configuration key: apprise://host[:port]/<configuration key>",
        ),
        (
            "apprise://apprise.lan/?urls=mailto://hunter2@x",
            "stateless urls= is not supported",
        ),
    ] {
        let e = parse_list(raw).unwrap_err().to_string();
        assert!(e.contains(want), "{raw}: {e}");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

/// What a chat or push receiver shows: never its token, user key, access
/// token, password or workflow signature.
#[test]
fn chat_and_push_receivers_show_no_secret() {
    for (raw, shown) in [
        (
            "telegram://12:hunter2@telegram?chats=@chan,-100",
            "telegram to @chan, -100",
        ),
        (
            "matrix://:hunter2@m.lan/?rooms=!a:m.lan",
            "matrix https://m.lan to !a:m.lan",
        ),
        (
            "matrix://bot:hunter2@m.lan:8448",
            "matrix https://m.lan:8448 to every joined room",
        ),
        (
            "pushover://shoutrrr:hunter2@hunter2key/?devices=phone",
            "pushover to phone",
        ),
        (
            "pushover://shoutrrr:hunter2@hunter2key",
            "pushover to every device",
        ),
        (
            "teams+https://flow.example:443/workflows/hunter2/run?sv=1&sig=hunter2",
            "teams workflow https://flow.example/…",
        ),
        (
            "apprises://u:hunter2@a.example/hunter2key",
            "apprise https://a.example/…",
        ),
    ] {
        let t = parse(raw).unwrap();
        let text = format!("{t} {t:?}");
        assert!(text.contains(shown), "{raw}: {text}");
        assert!(!text.contains("hunter2"), "{raw}: {text}");
    }
}
