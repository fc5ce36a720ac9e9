//! End to end: the status page (`GET /` on the daemon's HTTP port) after a
//! successful run and after a failed one, behind `HTTP_AUTH`, read by a real
//! headless browser (Debian's chromium): its DOM is checked and a screenshot
//! is taken of each (`target/e2e-screenshots/`; with
//! `STACKSHOT_UPDATE_DOCS=1` also into `docs/images/`, where the README
//! shows them). No secret of the stack may appear in the page.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const USER: &str = "viewer";
const PASSWORD: &str = "page-pass-4711";

/// The secrets the test stack holds: none may show on the page.
const SECRETS: &[&str] = &[
    RESTIC_PASSWORD,
    "pg-secret-password",
    "maria-root-secret",
    PASSWORD,
];

fn chromium() -> &'static str {
    for c in ["chromium", "chromium-browser"] {
        if Command::new(c).arg("--version").output().is_ok() {
            return c;
        }
    }
    panic!("no chromium on PATH: scripts/install-test-deps installs Debian's chromium");
}

/// chromium, headless, on `url` with `args`: its stdout.
fn browse(profile: &Path, url: &str, args: &[&str]) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1100,1500",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The page as the browser built it (its DOM), and a screenshot of it as `name`.png.
fn look(port: u16, name: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{USER}:{PASSWORD}@127.0.0.1:{port}/");
    let dom = browse(profile.path(), &url, &["--dump-dom"]);
    let dir = root().join("target/e2e-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    browse(
        profile.path(),
        &url,
        &[&format!("--screenshot={}", png.display())],
    );
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot {png:?}: {e}"));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 20_000,
        "{png:?} is no screenshot of a page ({} bytes)",
        bytes.len()
    );
    if std::env::var_os("STACKSHOT_UPDATE_DOCS").is_some() {
        let docs: PathBuf = root().join("docs/images");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(&png, docs.join(format!("{name}.png"))).unwrap();
    }
    dom
}

/// The page's HTML straight from the port, as `user:password` (or none).
fn get_html(port: u16, auth: Option<&str>) -> (u16, String) {
    http_get_as(port, "/", auth).expect("the daemon's HTTP port answers")
}

/// Each of `wants` is in the page's DOM.
fn shows(dom: &str, wants: &[&str]) {
    for want in wants {
        assert!(dom.contains(want), "{want:?} is not on the page:\n{dom}");
    }
}

fn no_secrets(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "a secret is on the {what}");
    }
}

#[test]
fn the_status_page_after_a_success_and_a_failure_in_a_real_browser() {
    let _serial = serial();
    let base = root().join("tests/stack/docker-compose.yml");
    let daemon = root().join("tests/stack/daemon.override.yml");
    let auth = format!("{USER}:{PASSWORD}");
    let stack = Stack::up_with(
        "stackshot-e2e-page",
        &[&base, &daemon],
        &[("E2E_HTTP_AUTH", &auth)],
    );
    stack.wait_for_databases();
    stack.wait_for_daemon();
    let port = stack.http_port();

    // Without the user, or with a wrong password: 401, and nothing of the page.
    for given in [None, Some(format!("{USER}:wrong").as_str())] {
        let (code, body) = get_html(port, given);
        assert_eq!(code, 401, "{given:?}: {body}");
        assert!(!body.contains("<html"), "{body}");
    }

    // After a successful run.
    let ok = stack.exec("backup", &[], &["stackshot", "backup"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let (code, html) = get_html(port, Some(&auth));
    assert_eq!(code, 200, "{html}");
    no_secrets("page after a success", &html);
    let dom = look(port, "status-page-success");
    no_secrets("page after a success (DOM)", &dom);
    shows(
        &dom,
        &[
            "<title>stackshot · stackshot-e2e-page · ok</title>",
            r#"<span class="badge success">success</span>"#,
            r#"<rect class="bar success""#,
            r#"<rect class="window""#,
            // The plan as the daemon read it: the test stack stops app and
            // worker, dumps PostgreSQL and MariaDB.
            "postgres (postgres)",
            "mariadb (mariadb)",
            "<code>0 0 1 1 *</code>",
        ],
    );
    assert!(!dom.contains("<form") && !dom.contains("<button"), "{dom}");

    // After a failed run: the PostgreSQL password changed under stackshot.
    stack.psql("ALTER ROLE app PASSWORD 'rotated'").unwrap();
    let failed = stack.exec("backup", &[], &["stackshot", "backup"]);
    assert_eq!(failed.status.code(), Some(1));
    let (_, html) = get_html(port, Some(&auth));
    no_secrets("page after a failure", &html);
    let dom = look(port, "status-page-failure");
    no_secrets("page after a failure (DOM)", &dom);
    shows(
        &dom,
        &[
            "<title>stackshot · stackshot-e2e-page · failing</title>",
            r#"<span class="badge failed">failed</span>"#,
            r#"<span class="badge success">success</span>"#,
            r#"<rect class="bar failed""#,
            "cannot log in to postgres",
        ],
    );
    stack
        .psql("ALTER ROLE app PASSWORD 'pg-secret-password'")
        .unwrap();

    // The runs outlive the sidecar: restarted, its page still lists both
    // (kept in the state directory on the cache volume). The port it is
    // published on may change with the restart.
    run(&mut docker(&["restart", &stack.container("backup")]));
    stack.wait_for_daemon();
    let port = stack.http_port();
    let html = wait_for("the restarted daemon's page", 60, || {
        let (code, html) = get_html(port, Some(&auth));
        (code == 200).then_some(html)
    });
    let runs = html.matches(r#"<tr class="run">"#).count();
    assert_eq!(runs, 2, "the runs before the restart are gone:\n{html}");
    assert!(html.contains("cannot log in to postgres"), "{html}");
}
