//! End to end behind a Docker socket proxy: the sidecar reaches the engine
//! only over `DOCKER_HOST=tcp://socket-proxy:2375` (its own
//! /var/run/docker.sock is an empty directory), and the proxy (nginx from
//! Debian, tests/stack/socket-proxy/nginx-no-exec.conf) denies the exec
//! section, as docker-socket-proxy does with `EXEC=0`. Discovery works
//! through it (`stackshot plan`); `backup` and `restore all` fail in one line
//! naming EXEC, and the engine's events show no container of the stack
//! touched. `a_whole_backup_and_restore_through_haproxy` runs the whole cycle
//! through HAProxy configured as docker-socket-proxy.

mod common;

use common::*;

/// The one line of `out` about a denied section, checked for what it must say.
fn denial(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "{}", text(out));
    let all = text(out);
    let line = all
        .lines()
        .find(|l| l.contains("denies"))
        .unwrap_or_else(|| panic!("no line about the denied section: {all}"))
        .to_string();
    assert!(
        line.contains("the Docker API at tcp://socket-proxy:2375 denies EXEC (HTTP 403 on GET /exec/<none>/json); nothing was stopped: stackshot needs CONTAINERS, EXEC, VOLUMES, EVENTS, POST"),
        "{line}"
    );
    line
}

#[test]
fn a_section_the_socket_proxy_denies_is_named_before_anything_is_touched() {
    let _serial = serial();
    bench();
    let no_socket = tempfile::tempdir().unwrap();
    let stack = Stack::up_with(
        "stackshot-e2e-proxy",
        &[
            &root().join("tests/stack/docker-compose.yml"),
            &root().join("tests/stack/socket-proxy.override.yml"),
        ],
        &[("E2E_DOCKER_SOCKET", no_socket.path().to_str().unwrap())],
    );
    stack.wait_for_databases();
    // The sidecar has no socket: only the proxy.
    let sock = stack.beside("backup", &["test", "-S", "/var/run/docker.sock"]);
    assert_eq!(
        sock.status.code(),
        Some(1),
        "the sidecar still has the socket: {sock:?}"
    );

    // Reading the stack works through the proxy.
    let plan = stack.exec("backup", &[], &["stackshot", "plan"]);
    assert!(plan.status.success(), "{}", text(&plan));
    assert!(text(&plan).contains("postgres"), "{}", text(&plan));

    let proxy_log = || {
        text(&output(&mut docker(&[
            "logs",
            &stack.container("socket-proxy"),
        ])))
    };
    let before = proxy_log().lines().count();
    let watch = stack.watch();
    let backup = stack.exec("backup", &[], &["stackshot", "backup"]);
    let restore = stack.exec("backup", &[], &["stackshot", "restore", "all", "--yes"]);
    let events = watch.finish();
    denial(&backup);
    denial(&restore);
    let touched = events.touched_in(&stack.project);
    assert!(touched.is_empty(), "containers were touched: {touched:?}");
    // The proxy answered the probe, and no exec was started.
    let log = proxy_log();
    assert!(
        log.contains("/exec/stackshot-access-probe-0000/json HTTP/1.1\" 403"),
        "{log}"
    );
    // nginx denies every exec (403), so "no 101" alone could not fail: no
    // exec was even asked for, before or after the probe (a hook or a dump
    // run before it would create one: POST /containers/<id>/exec).
    let execs: Vec<&str> = log
        .lines()
        .skip(before)
        .filter(|l| l.contains("/exec") && !l.contains("stackshot-access-probe"))
        .collect();
    assert!(
        execs.is_empty(),
        "exec requests besides the access probe: {execs:#?}"
    );
}

/// Each request line of HAProxy's `option httplog` log with its status (the
/// field after the `Tq/Tw/Tc/Tr/Ta` timers).
fn statuses(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let timers = fields.iter().position(|f| f.matches('/').count() == 4)?;
            let status = fields.get(timers + 1)?;
            Some((status.to_string(), line.to_string()))
        })
        .collect()
}

/// Builds the HAProxy image (tests/bench/haproxy-image.sh; skipped when its
/// hash tag exists).
fn haproxy_image() {
    let out = std::process::Command::new("bash")
        .arg(root().join("tests/bench/haproxy-image.sh"))
        .output()
        .unwrap();
    assert!(out.status.success(), "haproxy-image.sh: {}", text(&out));
}

/// The whole cycle through a socket proxy: HAProxy (Debian trixie's 3.0)
/// configured as docker-socket-proxy, only CONTAINERS, EXEC, VOLUMES,
/// EVENTS, PING, VERSION and POST on. The sidecar has no socket. A backup in
/// the short window (its workers created and attached, the dumps' execs
/// upgraded, the stop confirmed on the event stream, all through the
/// proxy), plain restic restoring it byte for byte, and after a disaster
/// `restore all` bringing files and databases back. Then the proxy with
/// EXEC=0: the same one-line refusal as behind nginx.
#[test]
fn a_whole_backup_and_restore_through_haproxy() {
    let _serial = serial();
    bench();
    haproxy_image();
    let no_socket = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let mut stack = Stack::up_with(
        "stackshot-e2e-haproxy",
        &[
            &root().join("tests/stack/docker-compose.yml"),
            &root().join("tests/stack/socket-proxy-haproxy.override.yml"),
        ],
        &[
            ("E2E_DOCKER_SOCKET", no_socket.path().to_str().unwrap()),
            ("E2E_REPOSITORY", repo.path().to_str().unwrap()),
        ],
    );
    stack.wait_for_databases();
    let sock = stack.beside("backup", &["test", "-S", "/var/run/docker.sock"]);
    assert_eq!(
        sock.status.code(),
        Some(1),
        "the sidecar still has the socket: {sock:?}"
    );
    let seeded = Seeded::take(&stack);

    let watch = stack.watch();
    let (code, report, stderr) = stack.backup(&[]);
    let events = watch.finish();
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["result"], "success", "{report}");
    assert_eq!(report["window_mode"], "short", "{report}");
    assert_eq!(report["notes"], serde_json::json!([]), "{report}");
    let down = assert_window_events(&stack, &events);
    eprintln!("through HAProxy: the app was down {down:.2} s");

    let restored = stack.restore("latest");
    let r = restored.path();
    seeded.assert_in_snapshot(r);
    assert_pg_dump_restores(
        &stack,
        &r.join("databases/postgres/postgres-all.sql"),
        "haproxy",
    );

    // The disaster, then one command through the proxy.
    stack.disaster(empty.path());
    let all = stack.exec("backup", &[], &["stackshot", "restore", "all", "--yes"]);
    assert!(all.status.success(), "{}", text(&all));
    seeded.assert_back(&stack);
    // It all went through the proxy: exec starts upgraded (101) there, and
    // it denied nothing stackshot asked for.
    let log = text(&output(&mut docker(&[
        "logs",
        &stack.container("socket-proxy"),
    ])));
    let answered = statuses(&log);
    assert!(
        answered
            .iter()
            .any(|(status, line)| *status == "101" && line.contains("/start HTTP/1.1")),
        "no exec start was upgraded through the proxy: {log}"
    );
    let denied: Vec<&String> = answered
        .iter()
        .filter(|(status, _)| *status == "403")
        .map(|(_, line)| line)
        .collect();
    assert!(denied.is_empty(), "the proxy denied: {denied:?}");

    // The same proxy with EXEC=0: refused in one line, nothing touched.
    stack.set_env("E2E_PROXY_EXEC", "0");
    let up = stack.compose(&["up", "-d", "--no-build", "socket-proxy"]);
    assert!(up.status.success(), "{}", text(&up));
    wait_for("the proxy with EXEC=0", 30, || {
        let plan = stack.exec("backup", &[], &["stackshot", "plan"]);
        plan.status.success().then_some(())
    });
    let watch = stack.watch();
    let backup = stack.exec("backup", &[], &["stackshot", "backup"]);
    let events = watch.finish();
    denial(&backup);
    let touched = events.touched_in(&stack.project);
    assert!(touched.is_empty(), "containers were touched: {touched:?}");
}
