//! End to end: the sidecar as `stackshot daemon` — schedule, /healthz,
//! /metrics scraped by a real Prometheus, on-demand runs through
//! `docker exec`, and `docker kill`/`docker stop` inside a stop window.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn daemon_stack(project: &str, cron: &str) -> Stack {
    daemon_stack_with(project, cron, "short")
}

/// The daemon with `STOP_WINDOW=window`.
fn daemon_stack_with(project: &str, cron: &str, window: &str) -> Stack {
    let base = root().join("tests/stack/docker-compose.yml");
    let daemon = root().join("tests/stack/daemon.override.yml");
    let s = Stack::up_with(
        project,
        &[&base, &daemon],
        &[("E2E_BACKUP_CRON", cron), ("E2E_STOP_WINDOW", window)],
    );
    s.wait_for_databases();
    s
}

fn status(stack: &Stack) -> Value {
    let out = stack.exec("backup", &[], &["stackshot", "status", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[test]
fn schedule_metrics_and_a_real_prometheus() {
    let _serial = serial();
    let start = now();
    let stack = daemon_stack("stackshot-e2e-daemon", "*/20 * * * * *");
    // The daemon's schedule runs from the stack's start: a tick before the
    // databases answered may fail (on a loaded machine it did). Runs that
    // start after this moment must all succeed.
    let ready = chrono::Utc::now();
    let port = stack.http_port();

    // Two scheduled runs succeed.
    let metrics = wait_for("two scheduled successful runs", 180, || {
        let (_, body) = http_get(port, "/metrics")?;
        (sample(&body, "stackshot_backup_runs_total{result=\"success\"}")? >= 2.0).then_some(body)
    });
    let status_now = status(&stack);
    let early_failures = status_now["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] != "success")
        .inspect(|r| {
            let started: chrono::DateTime<chrono::Utc> =
                r["started_at"].as_str().unwrap().parse().unwrap();
            assert!(
                started < ready,
                "a scheduled run that started after the databases were ready did not succeed: {r}"
            );
        })
        .count();
    let end = now() + 1;
    let last_success = sample(&metrics, "stackshot_backup_last_success_timestamp_seconds").unwrap();
    let last_run = sample(&metrics, "stackshot_backup_last_run_timestamp_seconds").unwrap();
    assert!(
        (start as f64) < last_success && last_success <= end as f64,
        "{last_success} not in [{start}, {end}]"
    );
    assert!(last_run >= last_success);
    assert_eq!(
        sample(&metrics, "stackshot_backup_last_run_success"),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "stackshot_backup_runs_total{result=\"failed\"}"),
        Some(early_failures as f64),
        "the failed runs counted are not the early ones in the history: {status_now}"
    );
    let next = sample(&metrics, "stackshot_next_run_timestamp_seconds").unwrap();
    assert!(next > last_run, "next run {next} after the last {last_run}");
    assert!(sample(&metrics, "stackshot_backup_stop_window_seconds").unwrap() > 0.0);
    assert_eq!(sample(&metrics, "stackshot_containers_stopped"), Some(2.0));
    assert!(
        sample(
            &metrics,
            "stackshot_dump_bytes{service=\"postgres\",engine=\"postgres\"}"
        )
        .unwrap()
            > 10_000.0,
        "{metrics}"
    );
    assert!(
        metrics.contains("stackshot_build_info{version=\""),
        "{metrics}"
    );
    let status = status(&stack);
    let history = status["history"].as_array().unwrap();
    assert!(history.len() >= 2, "{status}");
    for r in history {
        assert_eq!(r["trigger"], "schedule", "{status}");
        // Scheduled runs start on the */20 ticks (within the scheduler's slack).
        let started: chrono::DateTime<chrono::Utc> =
            r["started_at"].as_str().unwrap().parse().unwrap();
        let into_tick = started.timestamp_millis().rem_euclid(20_000);
        assert!(
            into_tick < 2_000,
            "a run started {into_tick} ms after a */20 tick: {status}"
        );
    }
    assert!(stack.snapshots().len() >= 2);

    // promtool accepts the exposition.
    let file = stack.dir.path().join("metrics.txt");
    std::fs::write(&file, &metrics).unwrap();
    let check = output(
        Command::new("sh")
            .arg("-c")
            .arg(format!("promtool check metrics < {}", file.display())),
    );
    assert!(
        check.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // A real Prometheus scrapes it, and its query API answers.
    let prom_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = stack.dir.path().join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: stackshot\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"),
    )
    .unwrap();
    let mut prom = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the prometheus server (Debian's prometheus package)");
    let answer = std::panic::catch_unwind(|| {
        wait_for("Prometheus to scrape stackshot", 60, || {
            let (code, body) = http_get(
                prom_port,
                "/api/v1/query?query=stackshot_backup_last_run_success",
            )?;
            let v: Value = serde_json::from_str(&body).ok()?;
            (code == 200
                && v["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty()))
            .then_some(v)
        })
    });
    let _ = prom.kill();
    let _ = prom.wait();
    let answer = answer.unwrap();
    assert_eq!(answer["data"]["result"][0]["value"][1], "1", "{answer}");
}

#[test]
fn on_demand_runs_busy_refusal_and_health() {
    let _serial = serial();
    let stack = daemon_stack("stackshot-e2e-ondemand", "0 0 1 1 *");
    // Give the daemon time to bind its socket and HTTP port.
    stack.wait_for_daemon();

    // A run through docker exec: exit 0, progress streamed while it runs
    // (each stderr line timed as it arrives), not printed at the end.
    let mut child = stack.spawn_daemon_backup();
    let err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(err)
            .lines()
            .map_while(Result::ok)
            .map(|l| (std::time::Instant::now(), l))
            .collect::<Vec<_>>()
    });
    let out = child.wait_with_output().unwrap();
    let exited = std::time::Instant::now();
    let timed = reader.join().unwrap();
    let stderr = timed
        .iter()
        .map(|(_, l)| format!("{l}\n"))
        .collect::<String>();
    assert!(
        out.status.success(),
        "{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let first_stop = timed
        .iter()
        .find(|(_, l)| l.contains(" INFO stopped container="))
        .unwrap_or_else(|| panic!("no stop in the progress:\n{stderr}"))
        .0;
    assert!(
        exited.duration_since(first_stop) > Duration::from_millis(500),
        "the stop line arrived only {:?} before the command exited: progress is not streamed",
        exited.duration_since(first_stop)
    );
    // One run id: the one announced is the run's own (its log, report, tags).
    let announced = stderr
        .lines()
        .find_map(|l| l.strip_prefix("stackshot: the daemon started run "))
        .unwrap_or_else(|| panic!("no run id announced:\n{stderr}"));
    assert!(
        stderr.contains(&format!(" INFO backup starting run={announced}\n")),
        "the daemon announced run {announced}, the run logged another:\n{stderr}"
    );
    // A clean run warns of nothing (rustic in the image without
    // /etc/localtime once warned of the time zone on every call).
    assert!(
        !stderr.contains(" WARN "),
        "a clean run logged warnings:\n{stderr}"
    );
    for progress in [
        " INFO stopped container=",
        " INFO dumped ",
        " INFO snapshot progress ",
        " INFO started container=",
        // Retention runs after the run (KEEP_LAST=2), before the command returns.
        " INFO retention: kept 1, removed none kept=1 removed=0 pruned=false",
    ] {
        assert!(
            stderr.contains(progress),
            "{progress:?} missing from the streamed progress:\n{stderr}"
        );
    }
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("succeeded"), "{summary}");
    assert!(
        summary.contains("\n  retention: kept 1, removed none\n"),
        "the summary has no retention line:\n{summary}"
    );

    // A second trigger during a run is refused.
    stack.psql("CREATE TABLE big AS SELECT g AS id, repeat('x', 250) AS payload FROM generate_series(1, 600000) g").unwrap();
    let first = stack.spawn_daemon_backup();
    wait_for("the run to start", 60, || {
        (!status(&stack)["running"].is_null()).then_some(())
    });
    let second = stack.exec("backup", &[], &["stackshot", "backup"]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("a backup is already running"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );

    // A third run: KEEP_LAST=2 removes the first snapshot and prunes, and the
    // JSON report says so.
    let out = stack.exec("backup", &[], &["stackshot", "backup", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let retention = &report["retention"];
    assert_eq!(retention["outcome"], "applied", "{report}");
    assert_eq!(retention["kept"], 2, "{retention}");
    assert_eq!(
        retention["removed"].as_array().unwrap().len(),
        1,
        "{retention}"
    );
    assert_eq!(retention["pruned"], true, "{retention}");

    // Healthy now; a failed run (database password changed) makes /healthz 503 with the reason.
    let health = stack.exec("backup", &[], &["stackshot", "healthcheck"]);
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stdout)
    );
    stack.psql("ALTER ROLE app PASSWORD 'rotated'").unwrap();
    assert_eq!(
        stack
            .exec("backup", &[], &["stackshot", "backup"])
            .status
            .code(),
        Some(1)
    );
    let health = stack.exec("backup", &[], &["stackshot", "healthcheck"]);
    assert_eq!(health.status.code(), Some(1));
    let body: Value = serde_json::from_slice(&health.stdout).unwrap();
    assert_eq!(body["healthy"], false);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("cannot log in to postgres"),
        "{body}"
    );
    let (code, _) = http_get(stack.http_port(), "/healthz").unwrap();
    assert_eq!(code, 503);

    // The next good run makes it 200 again.
    stack
        .psql("ALTER ROLE app PASSWORD 'pg-secret-password'")
        .unwrap();
    assert!(
        stack
            .exec("backup", &[], &["stackshot", "backup"])
            .status
            .success()
    );
    let (code, body) = http_get(stack.http_port(), "/healthz").unwrap();
    assert_eq!(code, 200, "{body}");
    let s = status(&stack);
    let results: Vec<&str> = s["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        results,
        ["success", "failed", "success", "success", "success"],
        "{s}"
    );
    // Retention ran after each success: four successful runs, KEEP_LAST=2.
    assert_eq!(
        stack.snapshots().len(),
        2,
        "retention must forget the oldest snapshot"
    );
    assert!(
        s["maintenance"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "prune" && m["ok"] == true),
        "{s}"
    );
}

#[test]
fn kill_or_stop_the_sidecar_inside_a_window() {
    let _serial = serial();
    // The full window stays open through the big dump, long enough to hit.
    let stack = daemon_stack_with("stackshot-e2e-lifecycle", "0 0 1 1 *", "full");
    stack.wait_for_daemon();
    stack.psql("CREATE TABLE big AS SELECT g AS id, repeat('x', 250) AS payload FROM generate_series(1, 1000000) g").unwrap();
    let sidecar = stack.container("backup");

    // docker kill inside the window, then docker start: the app runs again
    // before the first /healthz answer.
    let child = stack.spawn_daemon_backup();
    wait_for("the window to open", 120, || {
        (stack.state("app") == "exited").then_some(())
    });
    run(&mut docker(&["kill", &sidecar]));
    let _ = child.wait_with_output();
    assert_eq!(
        stack.state("app"),
        "exited",
        "nothing could have started app yet"
    );
    let restarted = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    run(&mut docker(&["start", &sidecar]));
    let port = stack.http_port();
    // The first /healthz answer, timed on this host's clock (every 20 ms)...
    let polling = std::time::Instant::now();
    let first_answer = loop {
        if http_get(port, "/healthz").is_some() {
            break chrono::Utc::now();
        }
        assert!(
            polling.elapsed() < Duration::from_secs(60),
            "no /healthz answer"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // ...comes after the engine started the app again (same machine, same clock).
    assert_eq!(
        stack.state("app"),
        "running",
        "app must run before /healthz answers"
    );
    let app_started: chrono::DateTime<chrono::Utc> = run(&mut docker(&[
        "inspect",
        "-f",
        "{{.State.StartedAt}}",
        &stack.container("app"),
    ]))
    .trim()
    .parse()
    .unwrap();
    assert!(
        app_started < first_answer,
        "the app started at {app_started}, after the first /healthz answer at {first_answer}"
    );
    // The timing above holds only when recovery outlasts the CLI calls before
    // the first poll; the daemon's own log order holds always: it started the
    // app before it served HTTP at all.
    let logs = output(&mut docker(&["logs", "--since", &restarted, &sidecar]));
    let logs =
        String::from_utf8_lossy(&logs.stderr).to_string() + &String::from_utf8_lossy(&logs.stdout);
    let at = |needle: &str| {
        logs.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not logged since the restart:\n{logs}"))
    };
    assert!(
        at(&format!(
            "started container={}",
            stack.container_name("app")
        )) < at("HTTP: /healthz, /metrics and the status page"),
        "the daemon served HTTP before it started the app again:\n{logs}"
    );
    assert_eq!(stack.state("sidekick"), "running");
    let s = status(&stack);
    assert_eq!(s["recovered"].as_array().unwrap().len(), 2, "{s}");

    // docker stop inside the window: the window closes before the daemon exits.
    let child = stack.spawn_daemon_backup();
    wait_for("the window to open", 120, || {
        (stack.state("app") == "exited").then_some(())
    });
    let since = now().to_string();
    let asked = std::time::Instant::now();
    run(&mut docker(&["stop", "-t", "120", &sidecar]));
    let took = asked.elapsed();
    let _ = child.wait_with_output();
    assert_eq!(
        stack.state("app"),
        "running",
        "docker stop must leave the app running"
    );
    assert_eq!(stack.state("sidekick"), "running");
    assert_eq!(workers(&stack.project), Vec::<String>::new());
    // The daemon acted on SIGTERM itself: a daemon without a handler would
    // be killed at the end of the 120 s grace period, with nothing logged.
    assert!(
        took < Duration::from_secs(60),
        "docker stop took {took:?}: the daemon did not stop on SIGTERM"
    );
    let logs = output(&mut docker(&["logs", "--since", &since, &sidecar]));
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    let find = |needle: &str, from: usize| {
        logs[from..]
            .find(needle)
            .map(|i| i + from)
            .unwrap_or_else(|| panic!("{needle:?} not logged (after byte {from}):\n{logs}"))
    };
    let requested = find("stop requested signal=\"SIGTERM\"", 0);
    let app = format!("started container={}", stack.container_name("app"));
    let window_closed = find(&app, requested);
    let exited = logs
        .rfind("stackshot::daemon: stopped")
        .unwrap_or_else(|| panic!("the daemon did not log its exit:\n{logs}"));
    assert!(
        window_closed < exited,
        "the window closed after the daemon said it stopped:\n{logs}"
    );
}

/// `DRILL_CRON`: the daemon drills the latest run on its schedule and the
/// metrics show a failed drill (before any backup there is no run to drill,
/// and the daemon's status says why) and then a passing one.
#[test]
fn drill_cron_failure_then_success_in_the_metrics() {
    let _serial = serial();
    let base = root().join("tests/stack/docker-compose.yml");
    let daemon = root().join("tests/stack/daemon.override.yml");
    let stack = Stack::up_with(
        "stackshot-e2e-drill",
        &[&base, &daemon],
        &[("E2E_DRILL_CRON", "*/30 * * * * *")],
    );
    stack.wait_for_databases();
    let port = stack.http_port();
    let drill = |after: f64, what: &str| {
        wait_for(what, 150, || {
            let (_, body) = http_get(port, "/metrics")?;
            let at = sample(&body, "stackshot_drill_last_timestamp_seconds")?;
            (at > after).then(|| (at, sample(&body, "stackshot_drill_last_success")))
        })
    };

    let (failed_at, ok) = drill(0.0, "a first drill");
    assert_eq!(ok, Some(0.0), "a drill with no run to drill fails");
    let st = status(&stack);
    let m = st["maintenance"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["kind"] == "drill").cloned())
        .unwrap_or_else(|| panic!("no drill in the status: {st}"));
    assert_eq!(m["ok"], false, "{m}");
    assert!(
        m["message"].as_str().is_some_and(|s| !s.is_empty()),
        "the failure says why: {m}"
    );

    let (code, report, stderr) = stack.backup(&[]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    let backed_up = now() as f64;
    assert!(backed_up > failed_at);
    let (_, ok) = drill(backed_up, "a drill after the backup");
    assert_eq!(
        ok,
        Some(1.0),
        "the drill of a good run passes: {}",
        status(&stack)
    );
    let left = run(&mut docker(&[
        "ps",
        "-aq",
        "--filter",
        "label=stackshot.role=drill",
        "--filter",
        &format!("label=stackshot.project={}", stack.project),
    ]));
    assert_eq!(left.trim(), "", "no throwaway left");
}

/// The daemon's plan follows the engine: a new labelled service, then the
/// same service recreated with a mistyped label and fixed again, each seen in
/// `/metrics`, `/healthz`, `stackshot status`, `stackshot plan` and the log
/// within 5 s, with no backup run in between. Then the daemon's connection to
/// the engine is cut (a proxy socket stands in for the engine) while the fix
/// is made: those events are lost, and the plan is right again only because
/// the daemon reconnects and reads everything anew.
#[test]
fn the_plan_follows_labels_live_and_survives_a_lost_event_stream() {
    let _serial = serial();
    let engine_dir = tempfile::tempdir().unwrap();
    let proxy = proxy::EngineProxy::start(&engine_dir.path().join("docker.sock"));
    let file = |name: &str| root().join("tests/stack").join(name);
    let (live, typo) = (file("live.override.yml"), file("live-typo.override.yml"));
    let mut stack = Stack::up_with(
        "stackshot-e2e-live",
        &[
            &file("docker-compose.yml"),
            &file("daemon.override.yml"),
            &file("engine-proxy.override.yml"),
        ],
        &[("E2E_ENGINE_DIR", engine_dir.path().to_str().unwrap())],
    );
    stack.wait_for_databases();
    let port = stack.http_port();
    let metric = |series: &str| -> Option<f64> {
        let (_, body) = http_get(port, "/metrics")?;
        sample(&body, series)
    };
    let logs = |stack: &Stack| -> String {
        let out = output(&mut docker(&["logs", &stack.container("backup")]));
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    };
    // Within 5 s of `since`, `check` holds (polled every 100 ms).
    let within_5s = |what: &str, since: std::time::Instant, check: &dyn Fn() -> bool| {
        loop {
            if check() {
                eprintln!("{what}: seen after {:.2}s", since.elapsed().as_secs_f64());
                return;
            }
            assert!(
                since.elapsed() < Duration::from_secs(5),
                "{what}: not seen within 5 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // The whole stack's plan (the daemon may have started before compose
    // created the rest): sidekick and app stopped, the bystander unlabelled.
    wait_for("the daemon's plan of the whole stack", 60, || {
        (metric("stackshot_plan_ok") == Some(1.0)
            && metric("stackshot_plan_containers_to_stop") == Some(2.0))
        .then_some(())
    });
    assert_eq!(metric("stackshot_plan_unlabelled_containers"), Some(1.0));
    assert_eq!(metric("stackshot_plan_dumps"), Some(2.0));
    let mounts = metric("stackshot_plan_mounts").unwrap();

    // 1. A new labelled service.
    stack.add_file(&live);
    stack.compose_ok(&["up", "-d", "--no-deps", "cache"]);
    let since = std::time::Instant::now();
    within_5s("the new service in /metrics", since, &|| {
        metric("stackshot_plan_containers_to_stop") == Some(3.0)
            && metric("stackshot_plan_mounts") == Some(mounts + 1.0)
    });
    within_5s("the new service in `stackshot status`", since, &|| {
        status(&stack)["plan"]["summary"]["stop"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == "cache"))
    });
    let st = status(&stack);
    assert_eq!(
        st["history"],
        serde_json::json!([]),
        "no run in between: {st}"
    );
    let text = run(&mut docker(&[
        "exec",
        &stack.container("backup"),
        "stackshot",
        "status",
    ]));
    assert!(text.contains("plan: ok: stops "), "{text}");
    assert!(text.contains("cache"), "{text}");
    // `stackshot plan` in the sidecar prints the daemon's plan.
    let plan = stack.exec("backup", &[], &["stackshot", "plan"]);
    let (out, err) = (
        String::from_utf8_lossy(&plan.stdout),
        String::from_utf8_lossy(&plan.stderr),
    );
    assert!(plan.status.success(), "{out}{err}");
    assert!(err.contains("the running daemon's plan"), "{err}");
    assert!(out.contains("cache"), "{out}");
    assert!(
        logs(&stack).contains("new service cache: stopped during backup, backs up /srv/cache"),
        "{}",
        logs(&stack)
    );

    // 2. Recreated with a mistyped label: the plan turns bad at once.
    stack.add_file(&typo);
    stack.compose_ok(&["up", "-d", "--no-deps", "cache"]);
    let since = std::time::Instant::now();
    // `stackshot plan`, asked at once (before the event-driven re-plan is
    // due), is read from the engine by the daemon: it already has the typo.
    let plan = stack.exec("backup", &[], &["stackshot", "plan", "--json"]);
    let asked_after = since.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&plan.stdout);
    let plan: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(
        plan["errors"].as_array().is_some_and(|e| e.iter().any(|e| e
            .as_str()
            .unwrap_or("")
            .contains("stackshot.stop-during-backups"))),
        "`stackshot plan` {asked_after:.2}s after `up -d` missed the typo: {plan}"
    );
    within_5s("the typo in stackshot_plan_ok", since, &|| {
        metric("stackshot_plan_ok") == Some(0.0)
    });
    within_5s("the typo in the log", since, &|| {
        logs(&stack).contains("plan error: service cache (")
    });
    let (code, body) = http_get(port, "/healthz").unwrap();
    assert_eq!(code, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["plan"]["ok"], false, "{health}");
    assert!(
        health["plan"]["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("unknown label stackshot.stop-during-backups")),
        "{health}"
    );

    // 3. The engine goes away; the fix is made while the daemon cannot see it.
    proxy.cut();
    stack.remove_file(&typo);
    stack.compose_ok(&["up", "-d", "--no-deps", "cache"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        metric("stackshot_plan_ok"),
        Some(0.0),
        "the daemon saw the fix through a cut connection: the cut proves nothing"
    );
    proxy.restore();
    let since = std::time::Instant::now();
    within_5s("the fix after the reconnect", since, &|| {
        metric("stackshot_plan_ok") == Some(1.0)
    });
    let log = logs(&stack);
    assert!(log.contains("engine events: stream lost"), "{log}");
    assert!(log.contains("engine events: reconnected"), "{log}");
    assert!(log.contains("fixed: service cache ("), "{log}");
    assert_eq!(metric("stackshot_plan_containers_to_stop"), Some(3.0));
    assert_eq!(status(&stack)["history"], serde_json::json!([]));
}
