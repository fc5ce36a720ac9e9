//! End to end on Podman (rootful), through its Docker-compatible API: the
//! test starts Debian's `podman system service` on a socket and storage of
//! its own under `target/podman/` (the Docker engine is never touched),
//! imports the bench's images into Podman's storage, and brings the test
//! stack up there with docker-compose. Then the whole cycle: `plan`, a
//! short-window backup (the app and its sidekick stopped and started again
//! in order, seen on Podman's own event stream, the databases pinned and
//! dumped, nothing else touched), plain restic restoring the snapshot byte
//! for byte, a disaster, `restore all`, and `verify`.
//!
//! Podman here needs `default_ulimits` in a `containers.conf` of the test's
//! own (runc under Podman cannot raise resource limits on this kind of
//! machine), the cgroupfs manager and file events (no systemd).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;

/// The images the test stack runs, imported from the Docker engine.
const IMAGES: [&str; 4] = [
    "stackshot-test/base:local",
    "stackshot-test/postgres:local",
    "stackshot-test/mariadb:local",
    SIDECAR_IMAGE,
];

/// A `podman system service` of the test's own, stopped when dropped.
struct Podman {
    dir: PathBuf,
    service: Child,
}

impl Podman {
    /// `podman` with the test's storage and configuration.
    fn cmd(dir: &Path) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", dir.join("containers.conf"))
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--runroot")
            .arg(dir.join("run"));
        c
    }

    fn start() -> Podman {
        let dir = root().join("target/podman");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("containers.conf"),
            "[containers]\n\
             default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
             [engine]\n\
             cgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n",
        )
        .unwrap();
        let version = output(Self::cmd(&dir).arg("--version"));
        assert!(
            version.status.success(),
            "this test needs Debian's podman (scripts/install-test-deps installs it): {}",
            text(&version)
        );
        eprintln!("{}", String::from_utf8_lossy(&version.stdout).trim());
        let socket = dir.join("podman.sock");
        let _ = std::fs::remove_file(&socket);
        let service = Self::cmd(&dir)
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("service.log")).unwrap(),
            ))
            .spawn()
            .expect("podman system service");
        let podman = Podman { dir, service };
        wait_for("Podman's API socket", 30, || {
            let ping = Command::new("docker")
                .env("DOCKER_HOST", podman.host())
                .args(["version", "--format", "{{.Server.Version}}"])
                .output()
                .ok()?;
            ping.status.success().then_some(())
        });
        podman
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("podman.sock")
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// Imports `image` from the Docker engine, unless Podman holds the same
    /// image (the same id) already.
    fn import(&self, image: &str) {
        let id = run(&mut docker(&["image", "inspect", "-f", "{{.Id}}", image]));
        let held =
            output(Self::cmd(&self.dir).args(["image", "inspect", "--format", "{{.Id}}", image]));
        if held.status.success()
            && id.trim().trim_start_matches("sha256:")
                == String::from_utf8_lossy(&held.stdout).trim()
        {
            return;
        }
        let mut save = docker(&["save", image])
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker save");
        let load = Self::cmd(&self.dir)
            .arg("load")
            .stdin(save.stdout.take().unwrap())
            .output()
            .expect("podman load");
        assert!(save.wait().unwrap().success(), "docker save {image}");
        assert!(
            load.status.success(),
            "podman load {image}: {}",
            text(&load)
        );
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.service.kill();
        let _ = self.service.wait();
    }
}

#[test]
fn plan_backup_restore_and_verify_on_podman() {
    // The images come from the Docker engine, built as for every test.
    bench();
    let podman = Podman::start();
    for image in IMAGES {
        podman.import(image);
    }
    // From here on every docker and docker-compose this test runs talks to
    // Podman. SAFETY: nextest runs this test alone in its process, and no
    // other thread reads the environment while it is set.
    unsafe { std::env::set_var("DOCKER_HOST", podman.host()) };
    let engine = run(&mut docker(&["version", "--format", "{{.Server.Version}}"]));
    eprintln!("the engine behind DOCKER_HOST: Podman {}", engine.trim());

    let empty = tempfile::tempdir().unwrap();
    // The repository outlives the disaster: a host directory.
    let repo = tempfile::tempdir().unwrap();
    let socket = podman.socket();
    let mut stack = Stack::up_with(
        "stackshot-e2e-podman",
        &[
            &root().join("tests/stack/docker-compose.yml"),
            &root().join("tests/stack/daemon.override.yml"),
        ],
        &[
            ("E2E_DOCKER_SOCKET", socket.to_str().unwrap()),
            ("E2E_REPOSITORY", repo.path().to_str().unwrap()),
        ],
    );
    stack.wait_for_databases();
    stack.wait_for_daemon();
    let seeded = Seeded::take(&stack);

    // The plan, read from Podman: the sidecar found its own container and
    // project there.
    let plan = stack.exec("backup", &[], &["stackshot", "plan"]);
    let said = text(&plan);
    assert!(plan.status.success(), "{said}");
    for want in [
        "Plan for compose project \"stackshot-e2e-podman\"",
        "Stop window: short",
    ] {
        assert!(said.contains(want), "{want:?} not in the plan:\n{said}");
    }

    // A short-window backup, watched on Podman's event stream.
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
        [
            "stackshot-e2e-podman_app_1",
            "stackshot-e2e-podman_sidekick_1"
        ],
        "{report}"
    );
    let dumped: Vec<&str> = report["dumps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["file"].as_str().unwrap())
        .collect();
    assert_eq!(dumped.len(), 2, "PostgreSQL and MariaDB dumped: {report}");
    // Podman's stream sends `die` and `start` for a stop and a start, no
    // `stop`: the order and "nothing else touched" are checked on those.
    let down = assert_window_events_of(&stack, &events, &["die", "start"]);
    eprintln!("on Podman the app was down {down:.2} s");

    // Plain restic restores the snapshot from the repository volume (a
    // Podman volume) byte for byte.
    let restored = stack.restore("latest");
    seeded.assert_in_snapshot(restored.path());

    // The disaster, then `restore all` and `verify`.
    stack.disaster(empty.path());
    stack.wait_for_daemon();
    let all = stack.exec("backup", &[], &["stackshot", "restore", "all", "--yes"]);
    assert!(all.status.success(), "{}", text(&all));
    seeded.assert_back(&stack);
    stack.assert_verify(2);
}
