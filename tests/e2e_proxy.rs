//! End to end behind a Docker socket proxy: the sidecar reaches the engine
//! only over `DOCKER_HOST=tcp://socket-proxy:2375` (its own
//! /var/run/docker.sock is an empty directory), and the proxy (nginx from
//! Debian, tests/stack/socket-proxy/nginx-no-exec.conf) denies the exec
//! section, as docker-socket-proxy does with `EXEC=0`. Discovery works
//! through it (`stackshot plan`); `backup` and `restore all` fail in one line
//! naming EXEC, and the engine's events show no container of the stack
//! touched.

mod common;

use common::*;

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

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
    let sock = stack.exec("backup", &[], &["test", "-S", "/var/run/docker.sock"]);
    assert!(!sock.status.success(), "the sidecar still has the socket");

    // Reading the stack works through the proxy.
    let plan = stack.exec("backup", &[], &["stackshot", "plan"]);
    assert!(plan.status.success(), "{}", text(&plan));
    assert!(text(&plan).contains("postgres"), "{}", text(&plan));

    let watch = stack.watch();
    let backup = stack.exec("backup", &[], &["stackshot", "backup"]);
    let restore = stack.exec("backup", &[], &["stackshot", "restore", "all", "--yes"]);
    let events = watch.finish();
    denial(&backup);
    denial(&restore);
    let touched: Vec<String> = events
        .touched()
        .into_iter()
        .filter(|n| n.starts_with(&stack.project))
        .collect();
    assert!(touched.is_empty(), "containers were touched: {touched:?}");
    // The proxy answered the probe, and no exec was started.
    let log = text(&output(&mut docker(&[
        "logs",
        &stack.container("socket-proxy"),
    ])));
    assert!(
        log.contains("/exec/stackshot-access-probe-0000/json HTTP/1.1\" 403"),
        "{log}"
    );
    assert!(!log.contains("/start HTTP/1.1\" 101"), "{log}");
}
