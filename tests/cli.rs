//! The stackshot binary's command line, without an engine.

use std::process::Command;

fn stackshot(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stackshot"))
        .env_clear()
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("run stackshot")
}

/// `stackshot healthcheck` needs only HTTP_ADDR: in a container with no
/// RESTIC_* at all (a worker, say) it asks the port and reports what it
/// found, instead of failing on the missing configuration (exit 2).
#[test]
fn healthcheck_needs_only_http_addr() {
    // A port nothing listens on: unhealthy (1), not "configuration error" (2).
    let out = stackshot(&[("HTTP_ADDR", "127.0.0.1:9")], &["healthcheck"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("RESTIC_REPOSITORY"), "{stderr}");

    // A port that answers 200, as the daemon's /healthz would.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = conn.read(&mut buf).unwrap();
        let body = r#"{"healthy":true}"#;
        write!(
            conn,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    });
    let out = stackshot(&[("HTTP_ADDR", &addr)], &["healthcheck"]);
    server.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("healthy"));

    // A bad HTTP_ADDR is still one clear line and exit 2.
    let out = stackshot(&[("HTTP_ADDR", "nowhere")], &["healthcheck"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP_ADDR=\"nowhere\""));
}

/// A bad configuration stops `backup` as it stops `plan`: one line, exit
/// code 2, before the engine is asked (there is none here). A plan with
/// errors exits 2 too; that needs an engine (`e2e_drills`,
/// `preflight_failures_touch_nothing`).
#[test]
fn a_bad_configuration_exits_2_for_backup_as_for_plan() {
    let env = [
        ("RESTIC_REPOSITORY", "/repository"),
        ("RESTIC_PASSWORD", "restic-test-password"),
        ("KEEP_DAILY", "-3"),
    ];
    for args in [
        &["plan"][..],
        &["backup"],
        &["backup", "--json"],
        &["backup", "--no-restart"],
    ] {
        let out = stackshot(&env, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("stackshot: configuration error: KEEP_DAILY=\"-3\""),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("restic-test-password"), "{stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// `--from copy` where no copy repository is configured: one line naming
/// what is accepted, exit code 2, before the engine or a repository is
/// reached.
#[test]
fn from_copy_without_a_copy_repository_is_refused_in_one_line() {
    for args in [
        &["restore", "all", "--from", "copy", "--yes"][..],
        &["verify", "--from", "copy"],
        &["drill", "--from", "copy"],
        &["snapshots", "--from", "copy"],
    ] {
        let out = stackshot(
            &[
                ("RESTIC_REPOSITORY", "/nonexistent/repository"),
                ("RESTIC_PASSWORD", "x"),
                ("DOCKER_HOST", "tcp://127.0.0.1:1"),
            ],
            args,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("stackshot: --from copy: no copy repository is configured; accepted: --from primary, or set COPY_REPOSITORY"),
            "{args:?}: {stderr}"
        );
    }
}
