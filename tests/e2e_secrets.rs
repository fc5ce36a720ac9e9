//! The secrets sweep: through a whole backup and a restore drill by the
//! daemon, every place a secret could leak to is collected and searched for
//! the test stack's secret values (the repository password, and the
//! PostgreSQL, MariaDB and Redis passwords). None may appear anywhere. A
//! second sweep covers what a good run does not: failure reasons, the
//! notifications' payloads, the split layout and Redis.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;

/// The test stack's secret values: the repository password (a file), the
/// PostgreSQL password (plain environment), MariaDB's root password (a
/// file), and Redis's two (a file, and one on its command line).
const SECRETS: [&str; 5] = [
    RESTIC_PASSWORD,
    "pg-secret-password",
    "maria-root-secret",
    "redis-secret-password",
    "redis-cmdline-password",
];

/// The token in the path of a receiver that cannot be reached (a webhook's
/// secret, as Slack's and Discord's carry theirs).
const CLOSED_TOKEN: &str = "closed-receiver-token-5f3a";

/// What was collected, by where it came from.
struct Sweep(Vec<(String, String)>);

impl Sweep {
    fn add(&mut self, source: impl Into<String>, text: impl Into<String>) {
        self.0.push((source.into(), text.into()));
    }

    /// Fails naming the source and the match's surroundings.
    fn assert_clean(&self) {
        self.assert_clean_of(&[]);
    }

    /// Also of `more` secrets (a receiver's token).
    fn assert_clean_of(&self, more: &[&str]) {
        for (source, text) in &self.0 {
            for secret in SECRETS.iter().chain(more) {
                if let Some(at) = text.find(secret) {
                    let from = text.floor_char_boundary(at.saturating_sub(120));
                    let to = text.ceil_char_boundary((at + secret.len() + 120).min(text.len()));
                    panic!(
                        "the secret {secret:?} leaked into {source}: …{}…",
                        &text[from..to]
                    );
                }
            }
        }
    }
}

/// Every process's argv in `container`, one per line.
fn argv_of(container: &str) -> String {
    // `docker top` reads /proc from outside (the host's ps): it works on the
    // sidecar and its workers, which have no shell (`FROM scratch`).
    // (docker top needs the pid column to pick the container's processes.)
    let out = output(&mut docker(&["top", container, "-eo", "pid,args"]));
    if !out.status.success() {
        return String::new(); // gone between `docker ps` and here
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1) // the header, PID COMMAND
        .filter_map(|l| l.trim_start().split_once(char::is_whitespace))
        .map(|(_pid, args)| format!("{}\n", args.trim_start()))
        .collect()
}

/// Samples, until stopped, the argv of every process in `watched` and in
/// every container stackshot creates for `project` (workers, drill
/// throwaways), and each created container's `docker inspect`.
fn sampler(
    project: &str,
    watched: Vec<String>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Sweep> {
    let of_project = format!("label=stackshot.project={project}");
    std::thread::spawn(move || {
        let mut seen = BTreeSet::new();
        while !stop.load(Ordering::SeqCst) {
            let created: Vec<String> = run(&mut docker(&[
                "ps",
                "-aq",
                "--filter",
                "label=stackshot.role",
                "--filter",
                &of_project,
            ]))
            .lines()
            .map(str::to_string)
            .collect();
            for c in &created {
                let inspect = text(&output(&mut docker(&["inspect", c])));
                if !inspect.starts_with("[]") {
                    seen.insert((format!("docker inspect of created container {c}"), inspect));
                }
            }
            for c in watched.iter().chain(&created) {
                for line in argv_of(c).lines().filter(|l| !l.trim().is_empty()) {
                    seen.insert((format!("a process's argv in {c}"), line.to_string()));
                }
            }
        }
        Sweep(seen.into_iter().collect())
    })
}

#[test]
fn no_secret_in_argv_logs_metrics_status_or_inspect() {
    let _serial = serial();
    let stack = Stack::up_with(
        "stackshot-e2e-secrets",
        &[
            &root().join("tests/stack/docker-compose.yml"),
            &root().join("tests/stack/daemon.override.yml"),
            &root().join("tests/stack/secrets.override.yml"),
        ],
        &[],
    );
    stack.wait_for_databases();
    stack.wait_for_daemon();
    // The method finds a secret where one is: the service's own configuration.
    let pg_inspect = run(&mut docker(&["inspect", &stack.container("postgres")]));
    assert!(pg_inspect.contains("pg-secret-password"));

    let sidecar = stack.container("backup");
    // Every program the daemon starts (restic, however briefly it runs),
    // with its whole argv: strace follows the daemon's forks from the host.
    let trace_file = stack.dir.path().join("daemon-execve.trace");
    let daemon_pid = run(&mut docker(&["inspect", "-f", "{{.State.Pid}}", &sidecar]));
    let mut tracer = Command::new("strace")
        // Not -v: the environment (where secrets may travel) stays a count.
        .args(["-f", "-qq", "-s", "65536", "-e", "trace=execve", "-o"])
        .arg(&trace_file)
        .args(["-p", daemon_pid.trim()])
        .spawn()
        .expect("strace (scripts/install-test-deps installs it)");
    std::thread::sleep(std::time::Duration::from_secs(1)); // attached
    let watch = stack.watch();
    let stop = Arc::new(AtomicBool::new(false));
    let sampling = sampler(
        &stack.project,
        vec![
            sidecar.clone(),
            stack.container("postgres"),
            stack.container("mariadb"),
        ],
        stop.clone(),
    );
    let mut sweep = Sweep(Vec::new());

    // A backup (the daemon's short window), then a drill of it, each through
    // the daemon, their progress streamed as text; then the commands a user
    // reads state with.
    let backup = stack.exec("backup", &[], &["stackshot", "backup"]);
    assert!(backup.status.success(), "{}", text(&backup));
    sweep.add("`stackshot backup` (text progress)", text(&backup));
    let drill = stack.exec("backup", &[], &["stackshot", "drill"]);
    assert!(drill.status.success(), "{}", text(&drill));
    sweep.add("`stackshot drill`", text(&drill));
    let debug = [("LOG_LEVEL", "debug"), ("LOG_FORMAT", "text")];
    for args in [
        &["stackshot", "backup", "--json"][..],
        &["stackshot", "drill", "--json"],
        &["stackshot", "status"],
        &["stackshot", "status", "--json"],
        &["stackshot", "snapshots", "--json"],
        &["stackshot", "plan"],
        &["stackshot", "plan", "--json"],
        &["stackshot", "verify", "--quick"],
    ] {
        let out = stack.exec("backup", &debug, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        sweep.add(
            format!("`{}` (debug, text logs)", args.join(" ")),
            text(&out),
        );
    }
    stop.store(true, Ordering::SeqCst);
    let sampled = sampling.join().expect("sampler");
    // The sampler read argv in the sidecar, which has no shell (it would
    // pass on nothing if it read none).
    let in_sidecar = format!("a process's argv in {sidecar}");
    assert!(
        sampled
            .0
            .iter()
            .any(|(source, line)| *source == in_sidecar && line.contains("stackshot")),
        "the sampler never read the sidecar's processes"
    );
    let events = watch.finish();

    let port = stack.http_port();
    for path in ["/metrics", "/healthz"] {
        let (code, body) = http_get(port, path).expect(path);
        assert_eq!(code, 200, "{path}: {body}");
        sweep.add(path, body);
    }
    let logs = text(&output(&mut docker(&["logs", &sidecar])));
    assert!(
        logs.lines().filter(|l| l.starts_with('{')).count() > 20,
        "the daemon's JSON logs: {logs}"
    );
    assert!(
        logs.contains("\"level\":\"DEBUG\""),
        "debug lines are in the sweep"
    );
    sweep.add("the daemon's logs (JSON, debug)", logs);
    let _ = Command::new("kill").arg(tracer.id().to_string()).status();
    let _ = tracer.wait();
    let traced = std::fs::read_to_string(&trace_file).expect("strace's output");
    let restics = traced
        .lines()
        .filter(|l| l.contains("execve(\"") && l.contains("restic\""))
        .count();
    assert!(
        restics > 5,
        "strace saw {restics} restic starts of the daemon: it cannot prove anything\n{traced}"
    );
    sweep.add(
        "every execve of the daemon and its children (strace)",
        traced,
    );
    // This stack's events: other tests beside it use the same passwords.
    for e in events.of_project(&stack.project) {
        sweep.add(
            format!("engine event {} of {}", e.action, e.name),
            e.action.clone(),
        );
    }

    // The sweep saw what it claims to have searched.
    let argv: Vec<&String> = sampled
        .0
        .iter()
        .filter(|(s, _)| s.starts_with("a process's argv"))
        .map(|(_, t)| t)
        .collect();
    assert!(
        argv.iter().any(|l| l.contains("stackshot worker")),
        "no worker's argv was sampled"
    );
    assert!(
        sampled
            .0
            .iter()
            .any(|(s, t)| s.starts_with("docker inspect") && t.contains("stackshot.role")),
        "no created container was inspected"
    );
    let execs: Vec<&str> = events
        .0
        .iter()
        .filter_map(|e| e.action.strip_prefix("exec_start: "))
        .collect();
    for tool in ["pg_dump", "mariadb-dump", "psql"] {
        assert!(
            execs.iter().any(|c| c.contains(tool)),
            "no {tool} exec in the events: {execs:?}"
        );
    }
    sweep.0.extend(sampled.0);
    eprintln!("secrets sweep: {} texts searched", sweep.0.len());
    sweep.assert_clean();
}

/// Failures, notifications, the split layout and Redis: the daemon on the
/// host's network tells a webhook receiver on loopback (and a closed port)
/// of every run; a run in the split layout (`ATOMIC_BACKUP=false`) and a run
/// that fails (the PostgreSQL password changed under the stack) are made in
/// their own processes. Every payload, report, reason and log is searched.
#[test]
fn no_secret_in_failures_notifications_split_mode_or_redis() {
    use common::receivers::{HttpReceiver, free_port};
    let _serial = serial();
    let hook = HttpReceiver::start();
    let (http_port, closed) = (free_port(), free_port());
    let urls = format!(
        "http://127.0.0.1:{}/hook/secret-path-token,http://127.0.0.1:{closed}/nobody/{CLOSED_TOKEN}",
        hook.port
    );
    let file = |name: &str| root().join("tests/stack").join(name);
    let stack = Stack::up_with(
        "stackshot-e2e-secrets-failures",
        &[
            &file("docker-compose.yml"),
            &file("redis.override.yml"),
            &file("notify.override.yml"),
            &file("secrets.override.yml"),
        ],
        &[
            ("E2E_HTTP_PORT", &http_port.to_string()),
            ("E2E_NOTIFY_URLS", &urls),
            ("E2E_PING_URL", ""),
        ],
    );
    stack.wait_for_databases();
    stack.wait_for_daemon();
    let mut sweep = Sweep(Vec::new());
    let debug = [("LOG_LEVEL", "debug"), ("LOG_FORMAT", "text")];
    // Not through the daemon: its own process, with its own environment.
    let alone = ("STACKSHOT_SOCKET", "/nonexistent/stackshot.sock");

    // 1. Through the daemon, atomic: Redis dumped beside the databases.
    let out = stack.exec("backup", &[], &["stackshot", "backup", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    sweep.add("`stackshot backup --json` (daemon)", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("dump.rdb"),
        "Redis was dumped: {}",
        text(&out)
    );

    // 2. The split layout, in its own process, debug logs.
    let mut env = debug.to_vec();
    env.extend([alone, ("ATOMIC_BACKUP", "false")]);
    let out = stack.exec("backup", &env, &["stackshot", "backup", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["snapshots"].as_array().unwrap().len() > 2,
        "the split layout writes a snapshot per dump: {report}"
    );
    sweep.add(
        "`ATOMIC_BACKUP=false stackshot backup --json` (debug)",
        text(&out),
    );

    // 3. A failure: the PostgreSQL password changed under the stack. Its
    // reason, report and notification are searched.
    stack
        .psql("ALTER ROLE app PASSWORD 'changed-under-the-stack'")
        .expect("alter role");
    let mut env = debug.to_vec();
    env.push(alone);
    let out = stack.exec("backup", &env, &["stackshot", "backup", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["result"], "failed", "{report}");
    let reason = report["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("postgres"), "{reason}");
    sweep.add("the failed run's reason", reason);
    sweep.add("the failed run (debug)", text(&out));
    let out = stack.exec("backup", &[], &["stackshot", "backup", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    sweep.add("the failed run through the daemon", text(&out));
    stack
        .psql("ALTER ROLE app PASSWORD 'pg-secret-password'")
        .expect("alter role back");

    // What the receivers were told: each run's start and end, every payload.
    let reqs = hook.requests();
    let bodies: Vec<&str> = reqs
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.body.as_str())
        .collect();
    assert!(
        bodies.len() >= 4 && bodies.iter().any(|b| b.contains("\"failed\"")),
        "a payload per run, a failed one among them: {bodies:#?}"
    );
    for r in &reqs {
        sweep.add(
            format!("the webhook's {} {}", r.method, r.path),
            format!("{:?}\n{}", r.headers, r.body),
        );
    }
    let (code, body) = http_get(http_port, "/metrics").expect("/metrics");
    assert_eq!(code, 200);
    sweep.add("/metrics", body);
    let (_, body) = http_get(http_port, "/healthz").expect("/healthz");
    sweep.add("/healthz", body);
    let logs = text(&output(&mut docker(&["logs", &stack.container("backup")])));
    assert!(
        logs.contains("could not reach") || logs.contains("notif"),
        "the closed receiver's failure is in the logs: {logs}"
    );
    sweep.add("the daemon's logs (JSON, debug)", logs);
    eprintln!("secrets sweep (failures): {} texts searched", sweep.0.len());
    // The failing receiver's token too: its failure is reported and logged
    // after every run, by scheme, host and port only.
    sweep.assert_clean_of(&[CLOSED_TOKEN]);
}
