//! The test stack's whole cycle on an engine other than the bench's own
//! Docker: Podman (rootful and rootless, `tests/e2e_podman.rs`) and
//! rootless Docker (`tests/e2e_rootless_docker.rs`), and the unprivileged
//! user a rootless engine runs as.

use std::path::Path;
use std::process::{Command, Stdio};

use super::*;

/// The images the test stack runs, imported into the other engine from the
/// bench's Docker engine.
pub const IMAGES: [&str; 4] = [
    "stackshot-test/base:local",
    "stackshot-test/postgres:local",
    "stackshot-test/mariadb:local",
    SIDECAR_IMAGE,
];

/// Pipes `docker save image`, from the bench's engine (`DOCKER_HOST` is
/// not set yet when images are imported), into `load`, the other engine's
/// load command.
pub fn save_into(image: &str, mut load: Command) {
    let mut save = docker(&["save", image])
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker save");
    let loaded = load
        .stdin(save.stdout.take().unwrap())
        .output()
        .expect("the other engine's load");
    assert!(save.wait().unwrap().success(), "docker save {image}");
    assert!(
        loaded.status.success(),
        "loading {image}: {}",
        text(&loaded)
    );
}

/// Creates `user`, with subordinate user and group ids for its
/// namespaces, unless it exists. useradd gives it a range where
/// /etc/subuid exists; otherwise the 65,536 ids from `first_id` are written.
pub fn ensure_user(user: &str, first_id: u32) {
    let exists = Command::new("id")
        .arg(user)
        .output()
        .unwrap()
        .status
        .success();
    if !exists {
        run(Command::new("useradd").args(["-m", "-s", "/bin/sh", user]));
    }
    for file in ["/etc/subuid", "/etc/subgid"] {
        let ids = std::fs::read_to_string(file).unwrap_or_default();
        if !ids.lines().any(|l| l.starts_with(&format!("{user}:"))) {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(file)
                .unwrap();
            use std::io::Write;
            writeln!(f, "{user}:{first_id}:65536").unwrap();
        }
    }
}

/// The whole cycle on the engine behind `DOCKER_HOST` (set by the caller),
/// whose API socket `socket` is mounted into the sidecar; `user` is the
/// unprivileged user a rootless engine runs as (its scratch directories
/// are given to it). `plan`, a short-window backup watched on the engine's
/// event stream, plain restic restoring the snapshot byte for byte, a
/// disaster, `restore all` and `verify`.
pub fn cycle(socket: &Path, user: Option<&str>, project: &str) {
    let empty = tempfile::tempdir().unwrap();
    // The repository outlives the disaster: a host directory.
    let repo = tempfile::tempdir().unwrap();
    if let Some(user) = user {
        chown_to(empty.path(), user);
        chown_to(repo.path(), user);
    }
    let mut stack = Stack::up_owned(
        project,
        &[
            &root().join("tests/stack/docker-compose.yml"),
            &root().join("tests/stack/daemon.override.yml"),
        ],
        &[
            ("E2E_DOCKER_SOCKET", socket.to_str().unwrap()),
            ("E2E_REPOSITORY", repo.path().to_str().unwrap()),
        ],
        user,
    );
    if let Some(user) = user {
        // Owners outside the user's map, as on many a rootless user's bind
        // mount: the host's root group shows inside as the overflow id
        // (65534), which no chown there may set. The uploads keep that
        // group from the backup to the restore; the empty directory the
        // databases' init scripts come back into has it too, where the
        // snapshot holds the init directories' 65534:65534.
        for dir in [stack.dir.path().join("uploads"), empty.path().to_path_buf()] {
            run(Command::new("chown").arg(format!("{user}:root")).arg(dir));
        }
    }
    stack.wait_for_databases();
    stack.wait_for_daemon();
    let seeded = Seeded::take(&stack);

    // The plan, read from the engine: the sidecar found its own container and
    // project there.
    let plan = stack.exec("backup", &[], &["stackshot", "plan"]);
    let said = text(&plan);
    assert!(plan.status.success(), "{said}");
    for want in [
        format!("Plan for compose project \"{project}\""),
        "Stop window: short".to_string(),
    ] {
        assert!(said.contains(&want), "{want:?} not in the plan:\n{said}");
    }

    // A short-window backup, watched on the engine's event stream.
    let watch = stack.watch();
    let (code, report, stderr) = stack.backup(&[]);
    let events = watch.finish();
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["result"], "success", "{report}");
    assert_eq!(report["window_mode"], "short", "{report}");
    let mut stopped: Vec<&str> = report["window"]["stopped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["container"].as_str().unwrap())
        .collect();
    stopped.sort();
    assert_eq!(
        stopped,
        [format!("{project}_app_1"), format!("{project}_sidekick_1")],
        "{report}"
    );
    let dumped = report["dumps"].as_array().unwrap().len();
    assert_eq!(dumped, 2, "PostgreSQL and MariaDB dumped: {report}");
    // Podman's stream does not always send `stop` for a stop; every engine
    // sends `die` and `start`: the order and "nothing else touched" are
    // checked on those.
    let down = assert_window_events_of(&stack, &events, &["die", "start"]);
    eprintln!("on {project} the app was down {down:.2} s");

    // Plain restic restores the snapshot from the repository byte for byte.
    let restored = tempfile::tempdir().unwrap();
    if let Some(user) = user {
        // Rootless, restic's container writes as the user's ids.
        chown_to(restored.path(), user);
    }
    let mount = format!("{}:/restore", restored.path().display());
    let out = stack.restic(&[&mount], &["restore", "latest", "--target", "/restore"]);
    assert!(out.status.success(), "{}", text(&out));
    seeded.assert_in_snapshot(restored.path());

    // The disaster, then `restore all` and `verify`.
    stack.disaster(empty.path());
    stack.wait_for_daemon();
    let all = stack.exec("backup", &[], &["stackshot", "restore", "all", "--yes"]);
    assert!(all.status.success(), "{}", text(&all));
    seeded.assert_back(&stack);
    stack.assert_verify(2);
}
