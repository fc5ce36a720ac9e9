//! End to end: exec hooks around a backup, on the real engine. Their order
//! is read from the engine's own events (`exec_start`, `die`, `start`); a
//! failing pre-backup hook stops nothing, and the post-backup hook still runs.

mod common;

use common::*;

const LOG: &str = "/data/hooks.log";

fn exec_time(events: &Events, container: &str, command_part: &str) -> i64 {
    events
        .0
        .iter()
        .find(|e| {
            e.id == container
                && e.action.starts_with("exec_start: ")
                && e.action.contains(command_part)
        })
        .unwrap_or_else(|| {
            panic!(
                "no exec of {command_part:?} in {container}: {:?}",
                events.execs(container)
            )
        })
        .time_nano
}

#[test]
fn hooks_run_in_order_around_the_window_and_a_failing_pre_hook_stops_nothing() {
    let _serial = serial();
    let file = |name: &str| root().join("tests/stack").join(name);
    let stack = Stack::up_with(
        "stackshot-e2e-hooks",
        &[&file("docker-compose.yml"), &file("hooks.override.yml")],
        &[],
    );
    stack.wait_for_databases();
    let (app, legacy) = (stack.container("app"), stack.container("legacy"));

    // The plan lists them in the order they run.
    let plan = stack.exec("backup", &[], &["stackshot", "plan"]);
    let text = String::from_utf8_lossy(&plan.stdout).to_string();
    let hooks: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("Hooks"))
        .skip(2)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        hooks,
        [
            "pre-backup app",
            "pre-backup legacy",
            "pre-stop app",
            "post-backup app",
            "post-backup bystander"
        ],
        "{text}"
    );

    // 1. A good run: pre-backup before the first stop, pre-stop before the
    // app's stop, post-backup after the app's start.
    let watch = stack.watch();
    let out = stack.exec("backup", &[], &["stackshot", "backup", "--json"]);
    let events = watch.finish();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert_window_events(&stack, &events);
    let sidekick = stack.container("sidekick");
    let pre = exec_time(&events, &app, "echo pre-backup");
    let offen = exec_time(&events, &legacy, "offen-pre");
    let pre_stop = exec_time(&events, &app, "echo pre-stop");
    let post = exec_time(&events, &app, "echo post-backup");
    let first_stop = events.first(&sidekick, "die");
    assert!(
        pre < first_stop && offen < first_stop,
        "pre-backup hooks after a stop"
    );
    assert!(
        first_stop < pre_stop,
        "the app's pre-stop ran before its wave (after the sidekick's stop)"
    );
    assert!(
        pre_stop < events.first(&app, "die"),
        "pre-stop after the app's stop"
    );
    assert!(
        events.first(&app, "start") < post,
        "post-backup before the app ran again"
    );
    // Their output is in the log, and they ran once each, in order.
    assert!(
        stderr.contains("maintenance mode on") && stderr.contains("maintenance mode off"),
        "{stderr}"
    );
    let log = |stack: &Stack| {
        String::from_utf8_lossy(&stack.exec("app", &[], &["cat", LOG]).stdout).to_string()
    };
    assert_eq!(log(&stack), "pre-backup\npre-stop\npost-backup\n");

    // 2. A pre-backup hook that fails: the run fails before anything is
    // stopped, and the post-backup hook (maintenance mode off) still runs.
    assert!(
        stack
            .exec("app", &[], &["touch", "/data/fail-pre"])
            .status
            .success()
    );
    let snapshots = stack.snapshots().len();
    let watch = stack.watch();
    let out = stack.exec("backup", &[], &["stackshot", "backup", "--json"]);
    let events = watch.finish();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason
            .starts_with("a pre-backup hook failed; nothing was stopped: the pre-backup hook in "),
        "{reason}"
    );
    assert!(
        reason.contains("exited with 3: refusing: /data/fail-pre"),
        "{reason}"
    );
    events.assert_saw_exec(&app, "fail-pre");
    assert_eq!(
        events.touched_in(&stack.project),
        Vec::<String>::new(),
        "a failed pre-backup hook stopped something"
    );
    exec_time(&events, &app, "echo post-backup");
    assert_eq!(
        log(&stack),
        "pre-backup\npre-stop\npost-backup\npost-backup\n"
    );
    assert_eq!(
        stack.snapshots().len(),
        snapshots,
        "no snapshot from a refused run"
    );

    // 3. A post-backup hook that outlives its limit (2 s): the run fails and
    // says so, its snapshot stays, and the stack runs.
    assert!(
        stack
            .exec("app", &[], &["rm", "/data/fail-pre"])
            .status
            .success()
    );
    assert!(
        stack
            .exec("bystander", &[], &["touch", "/srv/slow"])
            .status
            .success()
    );
    // (Waited for, the 30 s hook would end with 0 and the run succeed.)
    let out = stack.exec("backup", &[], &["stackshot", "backup", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "a post-backup hook failed (the snapshot was written): the post-backup hook in "
        ) && reason.ends_with("did not finish within its limit of 2s (stackshot.exec.timeout)"),
        "{reason}"
    );
    assert_eq!(
        stack.snapshots().len(),
        snapshots + 1,
        "the run's snapshot stays"
    );
    for svc in ["app", "sidekick", "bystander"] {
        assert_eq!(stack.state(svc), "running", "{svc}");
    }
}
