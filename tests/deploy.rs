//! The shipped Prometheus rules and Grafana dashboard (`deploy/`): the rules
//! load and their unit tests pass under the real `promtool`, every alert has a
//! case that fires and one that stays silent, and the rules and the dashboard
//! name only metrics the daemon exports. No engine needed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy("prometheus"))
        .output()
        .expect("promtool (Debian's prometheus package; scripts/install-test-deps installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// Metric names the daemon exports (its `# TYPE` lines, classic format),
/// once a run with a dump and a failed notification, and a failed drill, have
/// given every labelled family a series.
fn exported() -> BTreeSet<String> {
    let m = stackshot::daemon::metrics::Metrics::new("test");
    let mut report = stackshot::report::RunReport::start();
    let mut v = serde_json::to_value(&report).unwrap();
    v["dumps"] = serde_json::json!([{
        "service": "postgres", "engine": "postgres", "database": null,
        "file": "postgres/postgres-all.sql", "bytes": 1, "sha256": "x",
        "seconds": 1.0, "server_version": "15"
    }]);
    v["notify_failures"] =
        serde_json::json!([{"scheme": "ntfy", "target": "ntfy x", "error": "refused"}]);
    v["phases"] = serde_json::json!([{"name": "window", "seconds": 1.0}]);
    report = serde_json::from_value(v).unwrap();
    m.record_run(&report);
    m.record_maintenance(stackshot::daemon::state::MaintenanceKind::Drill, false);
    let copy = stackshot::report::CopyReport::failed("/copy".into(), "refused".into(), 0.1);
    m.record_copy(&copy, chrono::Utc::now());
    m.encode()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Every `stackshot_…` name in `text`.
fn named(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("stackshot_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn rules_load_and_their_unit_tests_pass() {
    let check = promtool(&["check", "rules", "stackshot.rules.yml"]);
    assert!(check.contains("SUCCESS: 9 rules found"), "{check}");
    let test = promtool(&["test", "rules", "stackshot.rules.test.yml"]);
    assert!(test.contains("SUCCESS"), "{test}");
}

#[test]
fn every_alert_has_a_firing_and_a_silent_case() {
    let rules = std::fs::read_to_string(deploy("prometheus/stackshot.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(deploy("prometheus/stackshot.rules.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(alerts.len(), 9, "{alerts:?}");
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    for alert in alerts {
        let cases: Vec<bool> = lines
            .windows(2)
            .filter(|w| w[0] == format!("alertname: {alert}"))
            .map(|w| w[1] != "exp_alerts: []")
            .collect();
        assert!(cases.contains(&true), "{alert}: no case where it fires");
        assert!(
            cases.contains(&false),
            "{alert}: no case where it stays silent"
        );
    }
}

#[test]
fn rules_and_dashboard_use_only_exported_metrics() {
    let exported = exported();
    assert!(
        exported.contains("stackshot_backup_runs_total"),
        "{exported:?}"
    );
    for file in ["prometheus/stackshot.rules.yml", "grafana/stackshot.json"] {
        let text = std::fs::read_to_string(deploy(file)).unwrap();
        let used = named(&text);
        assert!(!used.is_empty(), "{file} names no metric");
        let unknown: Vec<&String> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics the daemon does not export: {unknown:?}"
        );
    }
}

#[test]
fn dashboard_is_grafana_json_with_a_datasource_variable() {
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/stackshot.json")).unwrap())
            .expect("valid JSON");
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"
            && v["query"] == "prometheus"
            && v["name"] == "datasource"),
        "no Prometheus datasource variable"
    );
    let panels = d["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for want in [
        "Last run",
        "Since the last success",
        "Next run",
        "Stop window",
        "Run duration",
        "Bytes added to the repository",
        "Dump size per service",
        "Dump duration per service",
    ] {
        assert!(titles.contains(&want), "no panel {want:?}: {titles:?}");
    }
    for p in panels {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            assert!(
                t["expr"].as_str().is_some_and(|e| e.contains("stackshot_")),
                "{}",
                p["title"]
            );
        }
    }
}
