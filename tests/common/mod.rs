//! The end-to-end test bench: a real Docker engine, images built locally
//! (tests/bench/build-images.sh), the sidecar image from the project's
//! Dockerfile, and compose stacks brought up and torn down per test.
//!
//! Nothing here skips: without an engine, a test fails and says why.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command, returning its output whatever the exit code.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed; returns its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `docker …`
pub fn docker(args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    c.args(args);
    c
}

/// Builds (or reuses) the test images and the sidecar image, once per test binary.
/// Panics with the reason when the engine cannot be reached.
pub fn bench() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let info = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output();
        match info {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "end-to-end tests need a reachable Docker engine; `docker info` said: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!("end-to-end tests need the docker CLI and a running engine: {e}"),
        }
        run(Command::new("bash").arg(root().join("tests/bench/build-images.sh")));
        build_sidecar_image();
    });
}

/// The sidecar image: the project's Dockerfile, stage `runtime-prebuilt`, on the
/// bench's base image, with the stackshot binary cargo built for these tests.
fn build_sidecar_image() {
    let ctx = tempfile::tempdir().expect("temp dir");
    let bin_dir = ctx.path().join("target/release");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_stackshot"), bin_dir.join("stackshot"))
        .expect("copy the stackshot binary into the build context");
    std::fs::copy(root().join("Dockerfile"), ctx.path().join("Dockerfile")).unwrap();
    run(docker(&[
        "build",
        "-q",
        "--target",
        "runtime-prebuilt",
        "--build-arg",
        "RUNTIME_IMAGE=stackshot-test/base:local",
        "-t",
        "stackshot-test/sidecar:local",
    ])
    .arg(ctx.path()));
}

/// A compose project brought up for one test and removed (with its volumes)
/// when dropped.
pub struct Stack {
    /// Compose project name.
    pub project: String,
    file: PathBuf,
    /// Scratch directory handed to the compose file as `E2E_DIR`.
    pub dir: tempfile::TempDir,
}

impl Stack {
    /// Brings up `file` as `project`, after removing any leftover of an earlier run.
    pub fn up(project: &str, file: &Path) -> Stack {
        bench();
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("uploads")).unwrap();
        std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
        std::fs::write(
            dir.path().join("secrets/mariadb-root"),
            "maria-root-secret\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("secrets/restic-password"),
            "restic-test-password\n",
        )
        .unwrap();
        let stack = Stack {
            project: project.to_string(),
            file: file.to_path_buf(),
            dir,
        };
        stack.compose(&["down", "-v", "--remove-orphans"]);
        run(&mut stack.compose_cmd(&["up", "-d", "--no-build"]));
        stack
    }

    fn compose_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker-compose");
        c.args(["-p", &self.project, "-f"])
            .arg(&self.file)
            .args(args)
            .env("E2E_DIR", self.dir.path());
        c
    }

    /// Runs a compose command, returning its output whatever the exit code.
    pub fn compose(&self, args: &[&str]) -> Output {
        output(&mut self.compose_cmd(args))
    }

    /// The id of the (first) container of `service`.
    pub fn container(&self, service: &str) -> String {
        let id = run(&mut self.compose_cmd(&["ps", "-q", service]));
        let id = id.lines().next().unwrap_or_default().trim().to_string();
        assert!(
            !id.is_empty(),
            "service {service} has no container in {}",
            self.project
        );
        id
    }

    /// `docker exec` in `service`'s container with extra environment; returns the output.
    pub fn exec(&self, service: &str, env: &[(&str, &str)], cmd: &[&str]) -> Output {
        let id = self.container(service);
        let mut c = Command::new("docker");
        c.arg("exec");
        for (k, v) in env {
            c.args(["-e", &format!("{k}={v}")]);
        }
        c.arg(&id).args(cmd);
        output(&mut c)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::env::var_os("STACKSHOT_KEEP_STACK").is_none() {
            self.compose(&["down", "-v", "--remove-orphans"]);
        }
    }
}

/// Polls `check` once a second until it returns `Some`, for at most `secs` seconds.
pub fn wait_for<T>(what: &str, secs: u64, mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..secs {
        if let Some(v) = check() {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    panic!("timed out after {secs}s waiting for {what}");
}

impl Stack {
    /// Runs SQL in the stack's PostgreSQL service (as POSTGRES_USER `app`, db `appdb`),
    /// returning unaligned output, or `None` when it fails.
    pub fn psql(&self, sql: &str) -> Option<String> {
        let out = self.exec(
            "postgres",
            &[],
            &["psql", "-U", "app", "-d", "appdb", "-Atc", sql],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Runs SQL in the stack's MariaDB service (as root, db `shop`).
    pub fn mariadb(&self, sql: &str) -> Option<String> {
        let out = self.exec(
            "mariadb",
            &[("MYSQL_PWD", "maria-root-secret")],
            &["mariadb", "-uroot", "shop", "-Ne", sql],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Waits until both databases answer with the seeded data.
    pub fn wait_for_databases(&self) {
        wait_for("PostgreSQL seed data", 90, || {
            self.psql("select count(*) from customers")
                .filter(|n| n == "1000")
        });
        wait_for("MariaDB seed data", 90, || {
            self.mariadb("select count(*) from orders")
                .filter(|n| n == "4")
        });
    }
}
