//! End to end: notifications and pings from the daemon, to real receivers on
//! the host's loopback (the sidecar shares the host's network here): an HTTP
//! receiver (the JSON webhook and the healthchecks.io-style pings) and a real
//! SMTP server (Debian's aiosmtpd). A third receiver points at a closed port:
//! it fails, is reported and counted, and changes no run's result.

mod common;

use common::receivers::{HttpReceiver, Request, SmtpServer, free_port};
use common::*;
use serde_json::Value;

fn position(reqs: &[Request], method: &str, path: &str) -> usize {
    reqs.iter()
        .position(|r| r.method == method && r.path == path)
        .unwrap_or_else(|| panic!("no {method} {path} among {reqs:#?}"))
}

#[test]
fn a_good_run_and_a_failed_run_reach_webhook_pings_and_email() {
    let _serial = serial();
    let hook = HttpReceiver::start();
    let smtp = SmtpServer::start();
    let (http_port, closed) = (free_port(), free_port());
    let urls = format!(
        "http://127.0.0.1:{p}/hook,smtp://127.0.0.1:{}/?from=stackshot@example.test&to=ops@example.test,oncall@example.test,http://127.0.0.1:{closed}/nobody,\
         ntfy://ntfy-user:ntfy-pass@127.0.0.1:{p}/backups,gotify://127.0.0.1:{p}/GotifyAppToken?disabletls=yes",
        smtp.port,
        p = hook.port,
    );
    let ping = format!("http://127.0.0.1:{}/ping/check-1", hook.port);
    let file = |name: &str| root().join("tests/stack").join(name);
    let mut stack = Stack::up_with(
        "stackshot-e2e-notify",
        &[&file("docker-compose.yml"), &file("notify.override.yml")],
        &[
            ("E2E_HTTP_PORT", &http_port.to_string()),
            ("E2E_NOTIFY_URLS", &urls),
            ("E2E_PING_URL", &ping),
        ],
    );
    stack.wait_for_databases();
    let metric = |series: &str| -> Option<f64> {
        let (_, body) = http_get(http_port, "/metrics")?;
        sample(&body, series)
    };
    wait_for("the daemon's plan of the whole stack", 60, || {
        (metric("stackshot_plan_containers_to_stop") == Some(2.0)).then_some(())
    });
    let backup = |stack: &Stack| {
        let out = stack.exec("backup", &[], &["stackshot", "backup", "--json"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("no report ({e}): {}", String::from_utf8_lossy(&out.stderr))
        });
        (out.status.code(), report)
    };

    // 1. A good run: told everywhere (NOTIFY_ON=always); the closed port fails
    // and is reported, and the run still succeeds.
    let (code, report) = backup(&stack);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["result"], "success", "{report}");
    let failures = report["notify_failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{report}");
    assert_eq!(failures[0]["scheme"], "http");
    // Named by scheme, host and port only: a receiver's path may be its token.
    assert_eq!(
        failures[0]["target"].as_str().unwrap(),
        format!("http://127.0.0.1:{closed}/…"),
        "{report}"
    );
    let reqs = hook.requests();
    let start = position(&reqs, "GET", "/ping/check-1/start");
    let told = position(&reqs, "POST", "/hook");
    let done = position(&reqs, "POST", "/ping/check-1");
    assert!(start < told && start < done, "{reqs:#?}");
    let body: Value = serde_json::from_str(&reqs[told].body).unwrap();
    assert_eq!(body["result"], "success", "{body}");
    assert_eq!(body["reason"], Value::Null, "{body}");
    assert_eq!(body["project"], "stackshot-e2e-notify", "{body}");
    assert!(
        body["title"]
            .as_str()
            .is_some_and(|t| t == "stackshot: stackshot-e2e-notify backup succeeded"),
        "{body}"
    );
    // Quoted-printable soft line breaks joined again.
    let unfold = |m: &String| m.replace("=\r\n", "").replace("=\n", "");
    // ntfy: the text as the body, the title and basic auth in headers.
    let header = |r: &Request, name: &str| {
        r.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let ntfy = &reqs[position(&reqs, "POST", "/backups")];
    assert_eq!(
        header(ntfy, "title"),
        "stackshot: stackshot-e2e-notify backup succeeded"
    );
    // base64("ntfy-user:ntfy-pass")
    assert_eq!(
        header(ntfy, "authorization"),
        "Basic bnRmeS11c2VyOm50ZnktcGFzcw=="
    );
    assert!(
        ntfy.body
            .starts_with("The backup of stackshot-e2e-notify succeeded"),
        "{}",
        ntfy.body
    );
    // Gotify: the token in X-Gotify-Key, JSON with title, message, priority.
    let gotify = &reqs[position(&reqs, "POST", "/message")];
    assert_eq!(header(gotify, "x-gotify-key"), "GotifyAppToken");
    let g: Value = serde_json::from_str(&gotify.body).unwrap();
    assert_eq!(
        g["title"],
        "stackshot: stackshot-e2e-notify backup succeeded"
    );
    assert_eq!(g["priority"], 3);
    let mail: Vec<String> = smtp.messages().iter().map(unfold).collect();
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert!(
        mail[0].contains("Subject: stackshot: stackshot-e2e-notify backup succeeded"),
        "{}",
        mail[0]
    );
    assert!(mail[0].contains("ops@example.test") && mail[0].contains("oncall@example.test"));
    assert!(mail[0].contains("Stop window: "), "{}", mail[0]);
    assert_eq!(
        metric("stackshot_notify_failures_total{scheme=\"http\"}"),
        Some(1.0)
    );

    // 2. A failed run: a service recreated with a mistyped label, so the plan
    // refuses and nothing is stopped. The reason reaches every receiver.
    stack.add_file(&file("live.override.yml"));
    stack.add_file(&file("live-typo.override.yml"));
    stack.compose_ok(&["up", "-d", "--no-deps", "cache"]);
    wait_for("the typo in the daemon's plan", 30, || {
        (metric("stackshot_plan_ok") == Some(0.0)).then_some(())
    });
    let before = hook.requests().len();
    let watch = stack.watch();
    let (code, report) = backup(&stack);
    let events = watch.finish();
    // Refused for its plan: exit code 2, as `stackshot plan` gives.
    assert_eq!(code, Some(2), "{report}");
    assert_eq!(report["plan_refused"], true, "{report}");
    assert_eq!(report["result"], "failed", "{report}");
    let reason = report["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("unknown label stackshot.stop-during-backups"),
        "{reason}"
    );
    assert_eq!(
        events.actions(&stack.container("app")),
        Vec::<String>::new(),
        "a refused plan stops nothing"
    );
    let reqs = hook.requests()[before..].to_vec();
    let start = position(&reqs, "GET", "/ping/check-1/start");
    let told = position(&reqs, "POST", "/hook");
    let fail = position(&reqs, "POST", "/ping/check-1/fail");
    assert!(start < told && start < fail, "{reqs:#?}");
    let body: Value = serde_json::from_str(&reqs[told].body).unwrap();
    assert_eq!(body["result"], "failed", "{body}");
    assert_eq!(body["reason"], reason.as_str(), "{body}");
    assert!(
        reqs[fail].body.contains(&format!("Reason: {reason}")),
        "{}",
        reqs[fail].body
    );
    let mail: Vec<String> = smtp.messages().iter().map(unfold).collect();
    assert_eq!(mail.len(), 2, "{mail:#?}");
    assert!(
        mail[1].contains("Subject: stackshot: stackshot-e2e-notify backup FAILED"),
        "{}",
        mail[1]
    );
    assert!(mail[1].contains("unknown label"), "{}", mail[1]);
    assert_eq!(
        metric("stackshot_notify_failures_total{scheme=\"http\"}"),
        Some(2.0)
    );
}
