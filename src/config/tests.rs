use super::*;

fn base() -> Vec<(&'static str, &'static str)> {
    vec![
        ("RESTIC_REPOSITORY", "/repository"),
        ("RESTIC_PASSWORD", "pw"),
    ]
}

fn parse(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut v: Vec<(String, String)> = base()
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    v.extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
    Config::from_env(&Env::from_pairs(v))
}

fn err(extra: &[(&str, &str)]) -> String {
    let e = parse(extra).expect_err("should be rejected").to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

#[test]
fn defaults() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.backup_cron.expr(), "0 2 * * *");
    assert_eq!(c.tz, Tz::UTC);
    assert!(c.atomic);
    assert_eq!(
        c.retention,
        Retention {
            daily: Some(7),
            weekly: Some(4),
            monthly: Some(12),
            yearly: Some(3),
            ..Default::default()
        }
    );
    assert_eq!(c.stop_timeout, Duration::from_secs(30));
    assert_eq!(c.snapshot_stall_timeout, Duration::from_secs(600));
    assert_eq!(c.http_addr.to_string(), "0.0.0.0:8080");
    assert_eq!(c.health_max_age, Duration::from_secs(26 * 3600));
    assert!(!c.include_all_projects && !c.exclude_bind_mounts);
    assert_eq!(c.file_pass, FilePass::Rustic);
    assert_eq!(
        (c.log_level, c.log_format),
        (LogLevel::Info, LogFormat::Text)
    );
    assert!(
        c.prune_cron.is_none()
            && c.check_cron.is_none()
            && c.verify_cron.is_none()
            && c.drill_cron.is_none()
    );
}

#[test]
fn values_and_aliases() {
    let c = parse(&[
        ("CRON_SCHEDULE", "*/5 * * * *"),
        ("TZ", "Europe/Berlin"),
        ("ATOMIC_BACKUP", "no"),
        ("RESTIC_KEEP_DAILY", "0"),
        ("KEEP_LAST", "3"),
        ("KEEP_WITHIN", "1y6m"),
        ("STOP_TIMEOUT", "1m30s"),
        ("HTTP_ADDR", "127.0.0.1:9000"),
        ("LOG_FORMAT", "JSON"),
        ("DOCKER_HOST", "tcp://socket-proxy:2375"),
    ])
    .unwrap();
    assert_eq!(c.backup_cron.expr(), "*/5 * * * *");
    assert_eq!(c.tz, chrono_tz::Europe::Berlin);
    assert!(!c.atomic);
    assert_eq!(c.retention.daily, None);
    assert_eq!(c.retention.last, Some(3));
    assert_eq!(c.retention.within.as_deref(), Some("1y6m"));
    assert_eq!(c.stop_timeout, Duration::from_secs(90));
    assert_eq!(c.log_format, LogFormat::Json);
}

#[test]
fn window_limit_defaults_by_window_and_is_bounded() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.window_limit(StopWindow::Short), WINDOW_LIMIT_SHORT);
    assert_eq!(c.window_limit(StopWindow::Full), WINDOW_LIMIT_FULL);
    let c = parse(&[("WINDOW_LIMIT", "2m")]).unwrap();
    assert_eq!(c.window_limit(StopWindow::Full), Duration::from_secs(120));
    let accepted = "accepted: a duration from 10s to 24h, such as 15m or 6h";
    assert_eq!(
        err(&[("WINDOW_LIMIT", "5s")]),
        format!("WINDOW_LIMIT=\"5s\": shorter than 10 seconds; {accepted}")
    );
    assert_eq!(
        err(&[("WINDOW_LIMIT", "2d")]),
        format!("WINDOW_LIMIT=\"2d\": longer than 24 hours; {accepted}")
    );
    assert_eq!(
        err(&[("WINDOW_LIMIT", "forever")]),
        format!("WINDOW_LIMIT=\"forever\": not a duration; {accepted}")
    );
}

#[test]
fn bad_cron() {
    assert_eq!(
        err(&[("BACKUP_CRON", "every night")]),
        format!(
            "BACKUP_CRON=\"every night\": not a cron schedule (2 fields); accepted: {}",
            schedule::ACCEPTED
        )
    );
    assert!(
        err(&[("PRUNE_CRON", "61 * * * *")])
            .starts_with("PRUNE_CRON=\"61 * * * *\": not a cron schedule")
    );
}

#[test]
fn negative_or_bad_retention() {
    assert_eq!(
        err(&[("KEEP_DAILY", "-1")]),
        format!("KEEP_DAILY=\"-1\": negative count; accepted: {COUNT}")
    );
    assert!(
        err(&[("RESTIC_KEEP_WEEKLY", "four")])
            .starts_with("RESTIC_KEEP_WEEKLY=\"four\": not a whole number")
    );
    assert!(
        err(&[("KEEP_WITHIN", "7 days")])
            .starts_with("KEEP_WITHIN=\"7 days\": not a restic duration")
    );
    assert!(err(&[("KEEP_DAILY", "1"), ("RESTIC_KEEP_DAILY", "2")]).contains("both set"));
}

#[test]
fn swarm_mode_is_detected_unless_set() {
    assert_eq!(parse(&[]).unwrap().swarm_mode, None);
    assert_eq!(parse(&[("SWARM_MODE", "auto")]).unwrap().swarm_mode, None);
    assert_eq!(
        parse(&[("SWARM_MODE", "true")]).unwrap().swarm_mode,
        Some(true)
    );
    assert_eq!(
        parse(&[("SWARM_MODE", "off")]).unwrap().swarm_mode,
        Some(false)
    );
    assert_eq!(
        err(&[("SWARM_MODE", "swarm")]),
        "SWARM_MODE=\"swarm\": not a swarm mode; accepted: auto (the default: on when stackshot runs as a swarm task), true or false (also 1/0, yes/no, on/off)"
    );
}

#[test]
fn unknown_log_level_and_format() {
    assert_eq!(
        err(&[("LOG_LEVEL", "loud")]),
        "LOG_LEVEL=\"loud\": unknown log level; accepted: trace, debug, info, warn or error"
    );
    assert!(err(&[("LOG_FORMAT", "xml")]).starts_with("LOG_FORMAT=\"xml\": unknown log format"));
    assert!(
        err(&[("STOP_WINDOW", "tiny")]).starts_with("STOP_WINDOW=\"tiny\": unknown stop window")
    );
    assert_eq!(
        err(&[("WINDOW_FILE_PASS", "rsync")]),
        "WINDOW_FILE_PASS=\"rsync\": unknown file pass; accepted: rustic or restic"
    );
}

#[test]
fn malformed_duration() {
    let e = err(&[("STOP_TIMEOUT", "soon")]);
    assert!(
        e.starts_with("STOP_TIMEOUT=\"soon\": not a duration ("),
        "{e}"
    );
    assert!(e.ends_with(&format!("; accepted: {DURATION}")), "{e}");
    assert!(
        err(&[("HEALTH_MAX_AGE", "-5h")]).starts_with("HEALTH_MAX_AGE=\"-5h\": negative duration")
    );
    assert!(err(&[("STOP_TIMEOUT", "0s")]).starts_with("STOP_TIMEOUT=\"0s\": zero duration"));
    // A huge value once overflowed the window's guards (timeout + 30 s).
    assert_eq!(
        err(&[("STOP_TIMEOUT", "18446744073709551615s")]),
        "STOP_TIMEOUT=\"18446744073709551615s\": longer than an hour; accepted: a duration from 1s to 1h, such as 30s or 5m"
    );
}

#[test]
fn freeze_is_a_boolean_and_off_by_default() {
    assert!(!parse(&[]).unwrap().freeze);
    assert!(parse(&[("FREEZE_DURING_BACKUP", "true")]).unwrap().freeze);
    let e = parse(&[("FREEZE_DURING_BACKUP", "pause")]).unwrap_err();
    assert!(format!("{e:#}").contains("FREEZE_DURING_BACKUP"), "{e:#}");
}

#[test]
fn append_only_is_a_boolean_and_off_by_default() {
    assert!(!parse(&[]).unwrap().append_only);
    assert!(parse(&[("APPEND_ONLY", "true")]).unwrap().append_only);
    assert!(
        err(&[("APPEND_ONLY", "sometimes")])
            .starts_with("APPEND_ONLY=\"sometimes\": not a boolean")
    );
}

#[test]
fn other_bad_values() {
    assert!(
        err(&[("ATOMIC_BACKUP", "maybe")]).starts_with("ATOMIC_BACKUP=\"maybe\": not a boolean")
    );
    assert!(err(&[("TZ", "Mars/Olympus")]).starts_with("TZ=\"Mars/Olympus\": unknown time zone"));
    assert!(
        err(&[("HTTP_ADDR", "8080")]).starts_with("HTTP_ADDR=\"8080\": not an address and port")
    );
    assert!(
        err(&[("DOCKER_HOST", "ssh://me@host")])
            .starts_with("DOCKER_HOST=\"ssh://me@host\": unsupported engine address")
    );
}

#[test]
fn both_value_and_file() {
    assert_eq!(
        err(&[
            ("BACKUP_CRON_FILE", "/run/secrets/cron"),
            ("BACKUP_CRON", "@daily")
        ]),
        "BACKUP_CRON and BACKUP_CRON_FILE are both set; set only one of them"
    );
    let e = Config::from_env(&Env::from_pairs([
        ("RESTIC_REPOSITORY", "/r"),
        ("RESTIC_PASSWORD", "pw"),
        ("RESTIC_PASSWORD_FILE", "/run/secrets/pw"),
    ]))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "RESTIC_PASSWORD and RESTIC_PASSWORD_FILE are both set; set only one of them"
    );
}

#[test]
fn unreadable_file() {
    let e = err(&[("KEEP_DAILY_FILE", "/nonexistent/keep")]);
    assert!(
        e.starts_with(
            "KEEP_DAILY_FILE=\"/nonexistent/keep\": cannot read the file: No such file or directory"
        ),
        "{e}"
    );
}

#[test]
fn missing_repository_or_password() {
    let e = Config::from_env(&Env::from_pairs([("RESTIC_PASSWORD", "pw")])).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("RESTIC_REPOSITORY is not set; set it to"),
        "{e}"
    );
    let e = Config::from_env(&Env::from_pairs([("RESTIC_REPOSITORY", "/r")])).unwrap_err();
    assert!(
        e.to_string().starts_with("RESTIC_PASSWORD is not set;"),
        "{e}"
    );
}

#[test]
fn file_forms_are_read_and_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "top-secret\n").unwrap();
    let cron = dir.path().join("cron");
    std::fs::write(&cron, "0 3 * * *\n").unwrap();
    let aws = dir.path().join("aws");
    std::fs::write(&aws, "aws-secret\n").unwrap();
    let c = Config::from_env(&Env::from_pairs([
        ("RESTIC_REPOSITORY", "/r"),
        ("RESTIC_PASSWORD_FILE", pw.to_str().unwrap()),
        ("BACKUP_CRON_FILE", cron.to_str().unwrap()),
        ("AWS_SECRET_ACCESS_KEY_FILE", aws.to_str().unwrap()),
        ("KEEP_DAILY", "3"),
    ]))
    .unwrap();
    assert_eq!(c.backup_cron.expr(), "0 3 * * *");
    let names: Vec<&str> = c.restic.env.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "AWS_SECRET_ACCESS_KEY",
            "RESTIC_PASSWORD",
            "RESTIC_REPOSITORY"
        ]
    );
    assert_eq!(c.restic.env[1].1.expose(), "top-secret");
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("top-secret") && !debug.contains("aws-secret"),
        "{debug}"
    );
}

#[test]
fn secret_values_are_not_echoed_in_errors() {
    // A bad value in a _FILE form is shown (it is configuration, not a credential),
    // but restic's password is never parsed and so never echoed.
    let e = Config::from_env(&Env::from_pairs([
        ("RESTIC_REPOSITORY", "/r"),
        ("RESTIC_PASSWORD", "hunter2"),
        ("KEEP_DAILY", "x"),
    ]))
    .unwrap_err();
    assert!(!e.to_string().contains("hunter2"));
}

#[test]
fn notification_settings() {
    let c = parse(&[
        (
            "NOTIFY_URLS",
            "https://h.example/hook, smtp://mail:2525/?from=a@b.c&to=d@e.f,g@h.i",
        ),
        ("NOTIFY_ON", "always"),
        ("PING_URL", "https://hc.example/ping/uuid"),
    ])
    .unwrap();
    assert_eq!(c.notify.targets.len(), 2);
    assert_eq!(c.notify.on, notify::NotifyOn::Always);
    assert!(c.notify.pings.base.is_some());
    assert_eq!(parse(&[]).unwrap().notify.on, notify::NotifyOn::Failure);
    // One line, everything but the scheme and host masked, what is accepted.
    let e = err(&[(
        "NOTIFY_URLS",
        "https://ok.example/x,ftp://me:hunter2@files/x",
    )]);
    assert!(
        e.starts_with(
            "NOTIFY_URLS=\"ftp://files/…\": unknown scheme \"ftp\"; accepted: comma-separated URLs"
        ),
        "{e}"
    );
    assert!(!e.contains("hunter2"));
    let e = err(&[("NOTIFY_ON", "sometimes")]);
    assert!(
        e.contains("accepted: failure (failed and partial runs) or always"),
        "{e}"
    );
    let e = err(&[("PING_URL", "hc-ping.com/secret-uuid")]);
    assert!(e.starts_with("PING_URL=\"…\": not an http(s) URL"), "{e}");
    assert!(!e.contains("secret-uuid"), "{e}");
}

#[test]
fn http_auth_is_read_from_its_file_and_never_echoed() {
    assert!(parse(&[]).unwrap().http_auth.is_none());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("http-auth");
    std::fs::write(&file, "viewer:a-long-secret\n").unwrap();
    let path = file.display().to_string();
    let c = parse(&[("HTTP_AUTH_FILE", &path)]).unwrap();
    assert_eq!(c.http_auth.as_ref().map(|a| a.user()), Some("viewer"));
    assert!(!format!("{c:?}").contains("a-long-secret"));
    std::fs::write(&file, "a-long-secret\n").unwrap();
    let e = err(&[("HTTP_AUTH_FILE", &path)]);
    assert!(
        e.starts_with("HTTP_AUTH_FILE=<hidden>: no colon; accepted: one line user:password"),
        "{e}"
    );
    assert!(!e.contains("a-long-secret"), "{e}");
}

#[test]
fn notify_template_is_checked_when_read() {
    assert!(parse(&[]).unwrap().notify.template.is_none());
    let c = parse(&[(
        "NOTIFY_TEMPLATE",
        "{{ project }} {{ result }}\n\n{{ text }}",
    )])
    .unwrap();
    assert!(c.notify.template.is_some());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("template.j2");
    std::fs::write(&file, "{{ title }}\n").unwrap();
    let path = file.display().to_string();
    assert!(
        parse(&[("NOTIFY_TEMPLATE_FILE", &path)])
            .unwrap()
            .notify
            .template
            .is_some()
    );
    // A misspelt field and a syntax error: one line, naming the variable
    // and what it accepts (the fields).
    let e = err(&[("NOTIFY_TEMPLATE", "{{ projet }}\n{{ text }}")]);
    assert!(
        e.starts_with("NOTIFY_TEMPLATE=<23 bytes>: projet is not a field of the run report; accepted: a MiniJinja (Jinja2) template"),
        "{e}"
    );
    assert!(e.contains("run_id, project, started_at"), "{e}");
    std::fs::write(&file, "{% if %}\n").unwrap();
    let e = err(&[("NOTIFY_TEMPLATE_FILE", &path)]);
    assert!(
        e.starts_with("NOTIFY_TEMPLATE_FILE=<8 bytes>: syntax error"),
        "{e}"
    );
    let e = err(&[
        ("NOTIFY_TEMPLATE", "{{ title }}"),
        ("NOTIFY_TEMPLATE_FILE", &path),
    ]);
    assert!(e.contains("are both set"), "{e}");
}

#[test]
fn repository_credentials_are_masked() {
    assert_eq!(
        mask_repository("rest:https://user:pass@host:8000/repo"),
        "rest:https://user:***@host:8000/repo"
    );
    assert_eq!(mask_repository("/repository"), "/repository");
    assert_eq!(
        mask_repository("sftp:user@host:/srv/restic"),
        "sftp:user@host:/srv/restic"
    );
}

fn env_of(c: &copy::CopyConfig) -> Vec<(String, String)> {
    c.restic
        .env
        .iter()
        .map(|(n, v)| (n.clone(), v.expose().to_string()))
        .collect()
}

#[test]
fn no_copy_unless_copy_repository_is_set() {
    assert!(parse(&[]).unwrap().copy.is_none());
    let e = err(&[("COPY_PASSWORD", "x")]);
    assert!(
        e.starts_with("COPY_REPOSITORY is not set; COPY_PASSWORD is set"),
        "{e}"
    );
    let e = err(&[("COPY_REPOSITORY", "/copy")]);
    assert!(e.starts_with("COPY_PASSWORD is not set"), "{e}");
    let e = err(&[("COPY_REPOSITORY", "/repository"), ("COPY_PASSWORD", "x")]);
    assert!(
        e.contains("the copy is the primary repository itself"),
        "{e}"
    );
}

#[test]
fn the_copy_reads_its_own_repository_and_the_primary_as_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("copy-pw");
    std::fs::write(&pw, "copy-secret\n").unwrap();
    let c = parse(&[
        ("COPY_REPOSITORY", "s3:http://s3:8333/offsite"),
        ("COPY_PASSWORD_FILE", pw.to_str().unwrap()),
        ("COPY_AWS_ACCESS_KEY_ID", "copy-key"),
        ("COPY_AWS_SECRET_ACCESS_KEY", "copy-s3-secret"),
        ("RESTIC_CACHE_DIR", "/cache/restic"),
        ("COPY_CRON", "30 3 * * *"),
        ("KEEP_LAST", "2"),
        ("COPY_KEEP_LAST", "5"),
        ("COPY_KEEP_DAILY", "0"),
    ])
    .unwrap();
    let copy = c.copy.expect("a copy");
    let env = env_of(&copy);
    let get = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(get("RESTIC_REPOSITORY"), Some("s3:http://s3:8333/offsite"));
    assert_eq!(get("RESTIC_PASSWORD"), Some("copy-secret"));
    assert_eq!(get("RESTIC_FROM_REPOSITORY"), Some("/repository"));
    assert_eq!(get("RESTIC_FROM_PASSWORD"), Some("pw"));
    assert_eq!(get("AWS_ACCESS_KEY_ID"), Some("copy-key"));
    assert_eq!(get("AWS_SECRET_ACCESS_KEY"), Some("copy-s3-secret"));
    // restic's own settings are the primary's unless the copy has its own.
    assert_eq!(get("RESTIC_CACHE_DIR"), Some("/cache/restic"));
    // No COPY_-prefixed name reaches restic, and each name is there once.
    assert!(env.iter().all(|(n, _)| !n.starts_with("COPY_")), "{env:?}");
    let mut names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
    names.dedup();
    assert_eq!(names.len(), env.len(), "{env:?}");
    assert_eq!(copy.cron.as_ref().map(|c| c.expr()), Some("30 3 * * *"));
    // Each COPY_KEEP_* rule defaults to the primary's.
    assert_eq!(
        copy.retention,
        Retention {
            last: Some(5),
            daily: None,
            weekly: Some(4),
            monthly: Some(12),
            yearly: Some(3),
            ..Default::default()
        }
    );
    assert_eq!(c.retention.last, Some(2));
    let shown = copy.shown();
    assert_eq!(shown.repository, "s3:http://s3:8333/offsite");
    assert_eq!(
        shown.retention,
        "--keep-last 5 --keep-weekly 4 --keep-monthly 12 --keep-yearly 3"
    );
    assert_eq!(shown.when, "30 3 * * *");
    // Secrets stay hidden in Debug.
    let debug = format!("{copy:?}");
    assert!(
        !debug.contains("copy-secret") && !debug.contains("copy-s3-secret"),
        "{debug}"
    );
}

#[test]
fn a_back_end_variable_both_repositories_set_must_agree() {
    let e = err(&[
        ("AWS_ACCESS_KEY_ID", "primary-key"),
        ("COPY_REPOSITORY", "s3:http://other/offsite"),
        ("COPY_PASSWORD", "x"),
        ("COPY_AWS_ACCESS_KEY_ID", "copy-key"),
    ]);
    assert!(
        e.starts_with("COPY_AWS_ACCESS_KEY_ID=<hidden>: differs from AWS_ACCESS_KEY_ID"),
        "{e}"
    );
    assert!(!e.contains("primary-key") && !e.contains("copy-key"), "{e}");
    // The same value, or none, is fine: the copy then uses the primary's.
    for extra in [vec![("COPY_AWS_ACCESS_KEY_ID", "primary-key")], vec![]] {
        let mut vars = vec![
            ("AWS_ACCESS_KEY_ID", "primary-key"),
            ("COPY_REPOSITORY", "s3:http://other/offsite"),
            ("COPY_PASSWORD", "x"),
        ];
        vars.extend(extra);
        let c = parse(&vars).unwrap().copy.unwrap();
        assert!(
            env_of(&c).contains(&("AWS_ACCESS_KEY_ID".into(), "primary-key".into())),
            "{:?}",
            env_of(&c)
        );
    }
}

#[test]
fn the_copy_s_password_command_and_append_only() {
    let c = parse(&[
        ("COPY_REPOSITORY", "/copy"),
        ("COPY_PASSWORD_COMMAND", "cat /run/secrets/copy"),
        ("COPY_APPEND_ONLY", "true"),
    ])
    .unwrap()
    .copy
    .unwrap();
    assert!(env_of(&c).contains(&(
        "RESTIC_PASSWORD_COMMAND".into(),
        "cat /run/secrets/copy".into()
    )));
    assert!(!env_of(&c).iter().any(|(n, _)| n == "RESTIC_PASSWORD"));
    assert!(c.append_only);
    assert_eq!(c.shown().retention, "append-only (nothing forgotten)");
    assert_eq!(c.shown().when, "after each successful run");
    let e = err(&[
        ("COPY_REPOSITORY", "/copy"),
        ("COPY_PASSWORD", "x"),
        ("COPY_PASSWORD_COMMAND", "y"),
    ]);
    assert!(e.contains("are both set"), "{e}");
    let e = err(&[
        ("COPY_REPOSITORY", "/copy"),
        ("COPY_PASSWORD", "x"),
        ("COPY_KEEP_LAST", "-1"),
    ]);
    assert!(e.starts_with("COPY_KEEP_LAST="), "{e}");
    let e = err(&[
        ("COPY_REPOSITORY", "/copy"),
        ("COPY_PASSWORD", "x"),
        ("COPY_CRON", "sometimes"),
    ]);
    assert!(e.starts_with("COPY_CRON="), "{e}");
}
