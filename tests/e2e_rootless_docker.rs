//! End to end on rootless Docker: the test starts Debian's
//! `dockerd-rootless.sh` (docker.io's, with rootlesskit and slirp4netns) as
//! an unprivileged user of its own, with its own socket, data root and
//! runtime directory (the bench's Docker engine is never touched), imports
//! the bench's images into it, and runs the test stack's whole cycle there
//! (`common::engines::cycle`): `plan`, a short-window backup watched on the
//! daemon's event stream, plain restic restoring the snapshot byte for
//! byte, a disaster, `restore all`, and `verify`.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::engines::{IMAGES, cycle, ensure_user, save_into};
use common::*;

/// The unprivileged user the rootless daemon runs as.
const USER: &str = "stackshot-rootless-docker";

/// Where docker.io keeps the rootless daemon's start script (not on PATH).
const CONTRIB: &str = "/usr/share/docker.io/contrib";

/// A rootless Docker daemon of the test's own, stopped when dropped.
struct RootlessDocker {
    dir: PathBuf,
    service: Child,
}

impl RootlessDocker {
    fn start() -> RootlessDocker {
        let script = PathBuf::from(CONTRIB).join("dockerd-rootless.sh");
        assert!(
            script.exists() && which("rootlesskit"),
            "this test needs docker.io's {} and Debian's rootlesskit (scripts/install-test-deps installs it)",
            script.display()
        );
        ensure_user(USER, 400_000);
        let dir = PathBuf::from(format!("/tmp/{USER}"));
        let runtime = dir.join("run");
        std::fs::create_dir_all(&runtime).unwrap();
        chown_to(&dir, USER);
        run(Command::new("chmod").arg("0700").arg(&runtime));
        let _ = std::fs::remove_file(runtime.join("docker.sock"));
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        chown_to(&dir.join("dockerd.log"), USER);
        let service = Command::new("runuser")
            .args(["-u", USER, "--", "env"])
            .arg(format!("HOME=/home/{USER}"))
            .arg(format!("XDG_RUNTIME_DIR={}", runtime.display()))
            .arg(format!("PATH={CONTRIB}:/usr/sbin:/usr/bin:/sbin:/bin"))
            .arg("dockerd-rootless.sh")
            .arg("--host")
            .arg(format!("unix://{}", runtime.join("docker.sock").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("dockerd-rootless.sh");
        let daemon = RootlessDocker { dir, service };
        let mut tries = 0;
        wait_for("the rootless daemon's API socket", 60, || {
            tries += 1;
            let ping = Command::new("docker")
                .env("DOCKER_HOST", daemon.host())
                .args(["version", "--format", "{{.Server.Version}}"])
                .output()
                .ok()?;
            if !ping.status.success() && tries % 20 == 0 {
                eprintln!("dockerd.log so far:\n{}", daemon.log_tail());
            }
            ping.status.success().then_some(())
        });
        daemon
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("run/docker.sock")
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Imports `image` from the bench's engine, unless the daemon holds
    /// the same image (the same id) already.
    fn import(&self, image: &str) {
        let id = run(&mut docker(&["image", "inspect", "-f", "{{.Id}}", image]));
        let held = output(
            docker(&["image", "inspect", "-f", "{{.Id}}", image]).env("DOCKER_HOST", self.host()),
        );
        if held.status.success() && String::from_utf8_lossy(&held.stdout).trim() == id.trim() {
            return;
        }
        let mut load = docker(&["load"]);
        load.env("DOCKER_HOST", self.host());
        save_into(image, load);
    }
}

impl Drop for RootlessDocker {
    fn drop(&mut self) {
        // rootlesskit, dockerd, containerd and their shims all run as the
        // user: a TERM to each, then a KILL to what is left.
        let _ = Command::new("pkill").args(["-u", USER]).status();
        for _ in 0..30 {
            let left = Command::new("pgrep").args(["-u", USER]).output();
            if left.is_ok_and(|o| o.stdout.is_empty()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        let _ = Command::new("pkill").args(["-KILL", "-u", USER]).status();
        let _ = self.service.wait();
    }
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The cycle on rootless Docker: the daemon, its storage and every
/// container run as an unprivileged user, in a user namespace.
#[test]
fn plan_backup_restore_and_verify_on_rootless_docker() {
    // The images come from the bench's engine, built as for every test.
    bench();
    let daemon = RootlessDocker::start();
    for image in IMAGES {
        daemon.import(image);
    }
    // From here on every docker and docker-compose this test runs talks to
    // the rootless daemon. SAFETY: nextest runs this test alone in its
    // process, and no other thread reads the environment while it is set.
    unsafe { std::env::set_var("DOCKER_HOST", daemon.host()) };
    let info = run(&mut docker(&[
        "info",
        "--format",
        "{{.ServerVersion}} {{.Driver}} {{.SecurityOptions}}",
    ]));
    eprintln!("the engine behind DOCKER_HOST: Docker {}", info.trim());
    assert!(info.contains("rootless"), "not a rootless daemon: {info}");
    cycle(
        &daemon.socket(),
        Some(USER),
        "stackshot-e2e-rootless-docker",
    );
}
