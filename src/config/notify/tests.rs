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
