//! The end-to-end test bench: a real Docker engine, images built locally
//! (tests/bench/build-images.sh), the sidecar image from the project's
//! Dockerfile, and compose stacks brought up and torn down per test.
//!
//! Nothing here skips: without an engine, a test fails and says why.

#![allow(dead_code)]

pub mod engines;
pub mod events;
pub mod notes;
pub mod proxy;
pub mod receivers;
pub mod swarm;
pub mod writer;
pub use events::{EventWatch, Events};

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

/// The services `stackshot plan --json` stops, each with its stop wave, in
/// the plan's order.
pub fn stop_waves(plan: &serde_json::Value) -> Vec<(String, u64)> {
    plan["stop"]
        .as_array()
        .unwrap_or_else(|| panic!("no stop list in the plan: {plan}"))
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap().to_string(),
                s["wave"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Gives `path` and everything in it to the host user `owner` (and the
/// user's group), readable by all.
pub fn chown_to(path: &Path, owner: &str) {
    run(Command::new("chown")
        .arg("-R")
        .arg(format!("{owner}:{owner}"))
        .arg(path));
    run(Command::new("chmod").arg("-R").arg("a+rX").arg(path));
}

/// `docker …`
pub fn docker(args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    c.args(args);
    c
}

/// Builds (or reuses) the test images and the sidecar image, once per test
/// process. Panics with the reason when the engine cannot be reached.
///
/// `scripts/test` builds them once before running the tests side by side,
/// and says so with `STACKSHOT_BENCH_READY=1`: then each test only checks
/// that the engine answers and the sidecar image exists, so that concurrent
/// tests never build (and replace) the same image at once.
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
        if std::env::var_os("STACKSHOT_BENCH_READY").is_some() {
            let sidecar = output(&mut docker(&["image", "inspect", SIDECAR_IMAGE]));
            assert!(
                sidecar.status.success(),
                "STACKSHOT_BENCH_READY is set but {SIDECAR_IMAGE} does not exist: run scripts/test, \
                 or unset it to build the images here"
            );
            return;
        }
        run(Command::new("bash").arg(root().join("tests/bench/build-images.sh")));
        build_sidecar_image();
    });
}

/// The sidecar image every test stack runs.
pub const SIDECAR_IMAGE: &str = "stackshot-test/sidecar:local";

/// The sidecar image with Debian bookworm's restic 0.14 in place of the one
/// the image pins: the key paths run on it too (`*_on_restic_0_14`).
pub const SIDECAR_IMAGE_RESTIC_0_14: &str = "stackshot-test/sidecar:restic-0.14";

/// A stack's environment entry that runs its sidecar on restic 0.14
/// (the compose file reads `SIDECAR_IMAGE`).
pub const ON_RESTIC_0_14: (&str, &str) = ("SIDECAR_IMAGE", SIDECAR_IMAGE_RESTIC_0_14);

/// [`bench`], and the restic 0.14 sidecar image ([`SIDECAR_IMAGE_RESTIC_0_14`]):
/// built here unless `scripts/test` built it (`STACKSHOT_BENCH_READY`).
/// Panics unless the image's restic says it is 0.14, so that a test named
/// for restic 0.14 never runs on another.
pub fn bench_restic_0_14() {
    bench();
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        if std::env::var_os("STACKSHOT_BENCH_READY").is_none() {
            run(Command::new("bash")
                .arg(root().join("tests/bench/sidecar-image.sh"))
                .arg(env!("CARGO_BIN_EXE_stackshot"))
                .arg("bookworm")
                .arg(SIDECAR_IMAGE_RESTIC_0_14));
        }
        let version = run(&mut docker(&[
            "run",
            "--rm",
            "--entrypoint",
            "/usr/local/bin/restic",
            SIDECAR_IMAGE_RESTIC_0_14,
            "version",
        ]));
        assert!(
            version.starts_with("restic 0.14."),
            "{SIDECAR_IMAGE_RESTIC_0_14} should carry restic 0.14 (scripts/test builds it): {version}"
        );
    });
}

/// The sidecar image: `tests/bench/sidecar-image.sh` with the stackshot
/// binary cargo built for these tests. With `STACKSHOT_E2E_IMAGE` set (CI
/// sets it to the image the real `Dockerfile` built), that image is tagged
/// as the sidecar instead.
fn build_sidecar_image() {
    if let Some(image) = std::env::var_os("STACKSHOT_E2E_IMAGE") {
        let image = image.to_string_lossy().to_string();
        run(&mut docker(&["tag", &image, SIDECAR_IMAGE]));
        return;
    }
    run(Command::new("bash")
        .arg(root().join("tests/bench/sidecar-image.sh"))
        .arg(env!("CARGO_BIN_EXE_stackshot")));
}

/// A compose project brought up for one test and removed (with its volumes)
/// when dropped.
pub struct Stack {
    /// Compose project name.
    pub project: String,
    files: Vec<PathBuf>,
    env: Vec<(String, String)>,
    /// Scratch directory handed to the compose file as `E2E_DIR`.
    pub dir: tempfile::TempDir,
}

impl Stack {
    /// Brings up `file` as `project`, after removing any leftover of an earlier run.
    pub fn up(project: &str, file: &Path) -> Stack {
        Stack::up_with(project, &[file], &[])
    }

    /// Brings up several compose files (later ones override) with extra
    /// environment for the files' substitutions.
    pub fn up_with(project: &str, files: &[&Path], env: &[(&str, &str)]) -> Stack {
        Stack::up_owned(project, files, env, None)
    }

    /// [`Stack::up_with`], its scratch directory (bind mounts, secrets)
    /// given to the host user `owner` first: a rootless engine's
    /// containers run as that user's ids.
    pub fn up_owned(
        project: &str,
        files: &[&Path],
        env: &[(&str, &str)],
        owner: Option<&str>,
    ) -> Stack {
        // As docker-compose labels it: `container` finds the containers by
        // that label, so the name must need no normalising.
        assert!(
            project
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'),
            "test project name {project:?}: lowercase letters, digits, - and _ only"
        );
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
        std::fs::write(dir.path().join("secrets/redis"), "redis-secret-password\n").unwrap();
        std::fs::write(
            dir.path().join("secrets/copy-password"),
            format!("{COPY_PASSWORD}\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("secrets/rest-repository"),
            format!("{REST_REPOSITORY}\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("secrets/s3-access-key-id"),
            format!("{S3_KEY_ID}\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("secrets/s3-secret-access-key"),
            format!("{S3_SECRET}\n"),
        )
        .unwrap();
        let stack = Stack {
            project: project.to_string(),
            files: files.iter().map(|f| f.to_path_buf()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dir,
        };
        if let Some(owner) = owner {
            chown_to(stack.dir.path(), owner);
        }
        stack.compose(&["down", "-v", "--remove-orphans"]);
        run(&mut stack.compose_cmd(&["up", "-d", "--no-build"]));
        stack
    }

    /// The test stack with its sidecar as the daemon
    /// (`tests/stack/daemon.override.yml`), brought up as `project`, once its
    /// databases serve and the daemon answers.
    pub fn up_daemon(project: &str) -> Stack {
        let s = Stack::up_with(
            project,
            &[
                &root().join("tests/stack/docker-compose.yml"),
                &root().join("tests/stack/daemon.override.yml"),
            ],
            &[],
        );
        s.wait_for_databases();
        s.wait_for_daemon();
        s
    }

    /// The test stack with `tests/stack/<file>` over it, brought up as
    /// `project`, once its databases serve.
    pub fn up_overridden(project: &str, file: &str) -> Stack {
        let s = Stack::up_with(
            project,
            &[
                &root().join("tests/stack/docker-compose.yml"),
                &root().join("tests/stack").join(file),
            ],
            &[],
        );
        s.wait_for_databases();
        s
    }

    fn compose_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker-compose");
        c.args(["-p", &self.project]);
        for f in &self.files {
            c.arg("-f").arg(f);
        }
        c.args(args)
            .env("E2E_DIR", self.dir.path())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs a compose command, returning its output whatever the exit code.
    pub fn compose(&self, args: &[&str]) -> Output {
        output(&mut self.compose_cmd(args))
    }

    /// Adds a compose file (it overrides the others) from now on.
    pub fn add_file(&mut self, file: &Path) {
        self.files.push(file.to_path_buf());
    }

    /// Leaves a compose file out from now on.
    pub fn remove_file(&mut self, file: &Path) {
        self.files.retain(|f| f != file);
    }

    /// Runs a compose command that must succeed.
    pub fn compose_ok(&self, args: &[&str]) {
        run(&mut self.compose_cmd(args));
    }

    /// Sets a variable for the compose file's substitutions from now on.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// The id of the (first) container of `service`, running or not, as
    /// `docker-compose ps -q` lists it: found by compose's labels with the
    /// engine's own CLI. Every `exec`, `psql` and wait goes through here, and
    /// the Python docker-compose costs about 0.7 s of CPU per call, which was
    /// the largest share of the suite's CPU on a 2-core machine.
    pub fn container(&self, service: &str) -> String {
        let project = format!("label=com.docker.compose.project={}", self.project);
        let service_label = format!("label=com.docker.compose.service={service}");
        let id = run(&mut docker(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &project,
            "--filter",
            &service_label,
            "--filter",
            "label=com.docker.compose.oneoff=False",
        ]));
        let id = id.lines().next().unwrap_or_default().trim().to_string();
        assert!(
            !id.is_empty(),
            "service {service} has no container in {}",
            self.project
        );
        id
    }

    /// The name of `service`'s (first) container, as the engine reports it.
    pub fn container_name(&self, service: &str) -> String {
        run(&mut docker(&[
            "inspect",
            "-f",
            "{{.Name}}",
            &self.container(service),
        ]))
        .trim()
        .trim_start_matches('/')
        .to_string()
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

    /// Runs `cmd` in a throwaway container of the bench's base image that
    /// shares `service`'s mounts and process namespace: for what a test
    /// needs a shell or coreutils for beside the sidecar, which has neither
    /// (it is the `FROM scratch` image users run). The exit code is the
    /// command's own, 126 or 127 when it could not run, so a negative check
    /// compares it exactly.
    pub fn beside(&self, service: &str, cmd: &[&str]) -> Output {
        beside(&self.container(service), cmd)
    }

    /// Sends `signal` (`TERM`, `KILL`) to the processes of `service` whose
    /// command line contains `pattern`, from the host: their host PIDs from
    /// `docker top`, then `kill` (the tests run as root). Quick, so that a
    /// process inside a short window is still there. Panics unless one
    /// matched and was signalled.
    pub fn signal(&self, service: &str, signal: &str, pattern: &str) {
        let id = self.container(service);
        let top = run(&mut docker(&["top", &id, "-eo", "pid,args"]));
        let pids: Vec<&str> = top
            .lines()
            .skip(1)
            .filter(|l| l.contains(pattern))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert!(
            !pids.is_empty(),
            "no process matching {pattern:?} in {service} to send SIG{signal} to:\n{top}"
        );
        let sig = format!("-{signal}");
        let mut kill = Command::new("kill");
        kill.arg(&sig).args(&pids);
        let out = output(&mut kill);
        assert!(
            out.status.success(),
            "kill {sig} {pids:?} ({pattern:?} in {service}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Stack {
    /// `down -v --remove-orphans`, a second time when the first failed:
    /// Podman refuses to remove a container another one shares the network
    /// of (the app, before its sidekick), which the first pass removes.
    fn down(&self) -> Output {
        let first = self.compose(&["down", "-v", "--remove-orphans"]);
        if first.status.success() {
            return first;
        }
        self.compose(&["down", "-v", "--remove-orphans"])
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::env::var_os("STACKSHOT_KEEP_STACK").is_none() {
            self.down();
        }
    }
}

/// [`Stack::beside`] for any container (a worker, say): `cmd` in a throwaway
/// container of the bench's base image sharing `container`'s mounts and
/// process namespace; its exit code is the command's own.
pub fn beside(container: &str, cmd: &[&str]) -> Output {
    let pid = format!("container:{container}");
    output(
        docker(&["run", "--rm", "--volumes-from", container, "--pid", &pid])
            .arg("stackshot-test/base:local")
            .args(cmd),
    )
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

    /// Waits until both database servers answer over TCP. The entrypoints
    /// run a first server on the socket alone while they initialise, then
    /// stop it and start the real one: an answer on the socket can come from
    /// the first, and the next query then meets neither (seen when tests
    /// run side by side). Only the real server listens on TCP.
    pub fn wait_for_servers(&self) {
        wait_for("PostgreSQL on TCP", 90, || {
            let argv = psql_tcp("pg-secret-password", "select 1");
            let out = self.exec("postgres", &[], &strs(&argv));
            out.status.success().then_some(())
        });
        wait_for("MariaDB on TCP", 90, || {
            let out = self.exec(
                "mariadb",
                &[("MYSQL_PWD", "maria-root-secret")],
                &["mariadb", "-h", "127.0.0.1", "-uroot", "-Ne", "select 1"],
            );
            out.status.success().then_some(())
        });
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
        self.wait_for_servers();
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

/// `psql` as user `app` in database `appdb` over TCP on the container's
/// loopback, with `password` (through `env`), running `sql`. Only a
/// server's real instance listens on TCP, not the one its entrypoint runs
/// while it initialises.
pub fn psql_tcp(password: &str, sql: &str) -> Vec<String> {
    let pw = format!("PGPASSWORD={password}");
    [
        "env",
        &pw,
        "psql",
        "-h",
        "127.0.0.1",
        "-U",
        "app",
        "-d",
        "appdb",
        "-Atc",
        sql,
    ]
    .map(String::from)
    .to_vec()
}

/// Borrows each string of `v`, for the `&[&str]` argument lists.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The password of the test stack's restic repository.
pub const RESTIC_PASSWORD: &str = "restic-test-password";
/// The copy repository's password (tests/stack/copy.override.yml).
pub const COPY_PASSWORD: &str = "copy-test-password";
/// The copy repository of tests/stack/copy.override.yml.
pub const COPY_REPOSITORY: &str = "s3:http://s3:8333/offsite";
/// The repository of tests/stack/s3.override.yml, as the sidecar sees it.
pub const S3_REPOSITORY: &str = "s3:http://s3:8333/stackshot";
/// The repository of tests/stack/rest.override.yml as plain restic reaches
/// it (the sidecar reads the same URL from a secret file).
pub const REST_REPOSITORY: &str =
    "rest:http://stackshot:stackshot-test-rest-secret@rest:8000/stackshot/";
/// The REST server's password (in the repository URL).
pub const REST_SECRET: &str = "stackshot-test-rest-secret";
/// The S3 server's access key (the sidecar reads it from a secret file).
pub const S3_KEY_ID: &str = "stackshot-test-key";
/// The S3 server's secret key.
pub const S3_SECRET: &str = "stackshot-test-s3-secret";

/// Serialises tests that bring up stacks or time drills, within one test binary.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// SHA-256 of a file on the host, hex.
pub fn sha256_file(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

impl Stack {
    /// Plain restic (the bench's base image, not stackshot) against the stack's
    /// repository volume, with `extra` mounted as `-v` arguments.
    /// With tests/stack/s3.override.yml among the files, the repository is
    /// the stack's S3 server instead, reached on the stack's network.
    pub fn restic(&self, extra: &[&str], args: &[&str]) -> Output {
        let volume = self.repository_mount();
        let mut c = docker(&["run", "--rm", "-v", &volume]);
        for e in extra {
            c.args(["-v", e]);
        }
        c.args(["-e", &format!("RESTIC_PASSWORD={RESTIC_PASSWORD}")]);
        if self.on_s3() {
            c.args([
                "--network",
                &format!("{}_default", self.project),
                "-e",
                &format!("RESTIC_REPOSITORY={S3_REPOSITORY}"),
                "-e",
                &format!("AWS_ACCESS_KEY_ID={S3_KEY_ID}"),
                "-e",
                &format!("AWS_SECRET_ACCESS_KEY={S3_SECRET}"),
            ]);
        } else if self.on_rest() {
            c.args([
                "--network",
                &format!("{}_default", self.project),
                "-e",
                &format!("RESTIC_REPOSITORY={REST_REPOSITORY}"),
            ]);
        } else {
            c.args(["-e", "RESTIC_REPOSITORY=/repository"]);
        }
        c.arg("stackshot-test/base:local").arg("restic").args(args);
        output(&mut c)
    }

    /// True when the stack keeps its repository on its REST server
    /// (tests/stack/rest.override.yml).
    pub fn on_rest(&self) -> bool {
        self.files.iter().any(|f| f.ends_with("rest.override.yml"))
    }

    /// True when the stack keeps its repository on its S3 server.
    pub fn on_s3(&self) -> bool {
        self.files.iter().any(|f| f.ends_with("s3.override.yml"))
    }

    /// The stack's repository as a `-v` argument mounting it at `/repository`.
    pub fn repository_mount(&self) -> String {
        match self.env.iter().find(|(k, _)| k == "E2E_REPOSITORY") {
            Some((_, path)) => format!("{path}:/repository"),
            None => format!("{}_repository:/repository", self.project),
        }
    }

    /// The repository's snapshots, from plain restic; `Err` with restic's
    /// words when they cannot be listed (no repository, a lock, bad JSON).
    pub fn try_snapshots(&self) -> Result<Vec<serde_json::Value>, String> {
        let out = self.restic(&[], &["snapshots", "--json"]);
        if !out.status.success() {
            return Err(format!(
                "restic snapshots failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "restic snapshots printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// The repository's snapshots; fails the test when they cannot be listed
    /// (an empty list never stands in for an error).
    pub fn snapshots(&self) -> Vec<serde_json::Value> {
        self.try_snapshots().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Restores snapshot `id` with plain restic into a new host directory.
    pub fn restore(&self, id: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let mount = format!("{}:/restore", dir.path().display());
        let out = self.restic(&[&mount], &["restore", id, "--target", "/restore"]);
        assert!(
            out.status.success(),
            "restore failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    }

    /// Where the engine keeps the stack's volume `volume` on this host.
    pub fn volume_dir(&self, volume: &str) -> PathBuf {
        let out = run(&mut docker(&[
            "volume",
            "inspect",
            "-f",
            "{{.Mountpoint}}",
            &format!("{}_{volume}", self.project),
        ]));
        PathBuf::from(out.trim())
    }

    /// The loopback port the sidecar's 8080 is published on.
    pub fn http_port(&self) -> u16 {
        let out = run(&mut docker(&[
            "port",
            &self.container("backup"),
            "8080/tcp",
        ]));
        out.lines()
            .next()
            .and_then(|l| l.rsplit(':').next())
            .and_then(|p| p.trim().parse().ok())
            .expect("published port")
    }

    /// True once the sidecar's daemon answers `stackshot status`.
    pub fn daemon_answers(&self) -> bool {
        self.exec("backup", &[], &["stackshot", "status"])
            .status
            .success()
    }

    /// Waits (60 s at most) until the sidecar's daemon answers.
    pub fn wait_for_daemon(&self) {
        wait_for("the daemon", 60, || self.daemon_answers().then_some(()));
    }

    /// Starts `stackshot backup` (to the daemon, progress on stderr) without
    /// waiting for it.
    pub fn spawn_daemon_backup(&self) -> std::process::Child {
        Command::new("docker")
            .args(["exec", &self.container("backup"), "stackshot", "backup"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `stackshot backup --json` in the sidecar, with extra environment:
    /// (exit code, report, stderr).
    pub fn backup(&self, env: &[(&str, &str)]) -> (i32, serde_json::Value, String) {
        let out = self.exec("backup", env, &["stackshot", "backup", "--json"]);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("backup --json printed no report ({e}): {stdout}\n{stderr}")
        });
        (out.status.code().unwrap_or(-1), report, stderr)
    }

    /// `stackshot verify` in the sidecar, which must pass and say that
    /// `dumps` dump(s) match their SHA256SUMS.
    pub fn assert_verify(&self, dumps: usize) {
        let verify = self.exec("backup", &[], &["stackshot", "verify"]);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        assert!(verify.status.success(), "{said}");
        assert!(said.contains(&format!("{dumps} dump(s) match")), "{said}");
    }

    /// `stackshot restore database --service SERVICE [--replace]` in the
    /// sidecar.
    pub fn restore_database(&self, service: &str, replace: bool) -> Output {
        let mut cmd = vec!["stackshot", "restore", "database", "--service", service];
        if replace {
            cmd.push("--replace");
        }
        self.exec("backup", &[], &cmd)
    }

    /// `restore database --replace` of `service`, which must succeed and,
    /// as the engine's events show, stop and start its container (a server
    /// that reads its files only at start); its stdout.
    pub fn replace_database(&self, service: &str) -> String {
        let id = self.container(service);
        let watch = self.watch();
        let out = self.restore_database(service, true);
        let events = watch.finish();
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{said}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        events.assert_saw(&id, &["die", "start"]);
        assert_eq!(self.state(service), "running");
        said
    }

    /// `stackshot drill` in the sidecar, which must pass; its line for `service`.
    pub fn drill_line(&self, service: &str) -> String {
        let drill = self.exec("backup", &[], &["stackshot", "drill"]);
        let said = String::from_utf8_lossy(&drill.stdout).to_string();
        assert!(
            drill.status.success(),
            "{said}\n{}",
            String::from_utf8_lossy(&drill.stderr)
        );
        said.lines()
            .find(|l| l.trim_start().starts_with(&format!("{service}:")))
            .unwrap_or_else(|| panic!("no {service} line in the drill: {said}"))
            .to_string()
    }

    /// The engine's state word for `service` (running, exited, …).
    pub fn state(&self, service: &str) -> String {
        run(&mut docker(&[
            "inspect",
            "-f",
            "{{.State.Status}}",
            &self.container(service),
        ]))
        .trim()
        .to_string()
    }

    /// When `service`'s container last started, and how often the engine
    /// restarted it: changes when it restarts.
    pub fn started_at(&self, service: &str) -> String {
        run(&mut docker(&[
            "inspect",
            "-f",
            "{{.State.StartedAt}} {{.RestartCount}}",
            &self.container(service),
        ]))
        .trim()
        .to_string()
    }

    /// Starts recording the engine's events live (see [`events`]).
    pub fn watch(&self) -> EventWatch {
        EventWatch::start()
    }
}

/// The `docker exec` of `command` in `service` started and ended inside the
/// stop window the engine's events show: after the app and its sidekick
/// died, before either started again (a dump "inside the window").
pub fn assert_exec_inside_window(stack: &Stack, events: &Events, service: &str, command: &str) {
    let (app, sidekick) = (stack.container("app"), stack.container("sidekick"));
    let opened = events
        .first(&app, "die")
        .max(events.first(&sidekick, "die"));
    let closed = events
        .first(&app, "start")
        .min(events.first(&sidekick, "start"));
    let (began, ended) = events.exec_span(&stack.container(service), command);
    assert!(
        opened < began && ended < closed,
        "{command} in {service} ran from {began} to {ended} ns, not inside the window ({opened} to {closed} ns)"
    );
}

/// What the engine's events must show of a backup of the test stack: the app
/// and its sidekick stopped and started again (the sanity check that the
/// stream saw the run), the sidekick (it shares the app's network) stopped
/// before the app and started after it, and the bystander, the databases and
/// the legacy service never touched. Returns the app's down time in seconds
/// (its `die` to its `start`).
pub fn assert_window_events(stack: &Stack, events: &Events) -> f64 {
    assert_window_events_of(stack, events, &["stop", "die", "start"])
}

/// [`assert_window_events`] on an engine whose stream sends `lifecycle`
/// for a container stopped and started again: Docker's `stop`, `die`,
/// `start`; Podman 4.3's `die`, `start` (it sends no `stop`).
pub fn assert_window_events_of(stack: &Stack, events: &Events, lifecycle: &[&str]) -> f64 {
    let app = stack.container("app");
    let sidekick = stack.container("sidekick");
    events.assert_saw(&app, lifecycle);
    events.assert_saw(&sidekick, lifecycle);
    let app_actions = events.actions(&app);
    let stop = app_actions.iter().position(|e| e == lifecycle[0]).unwrap();
    assert!(
        app_actions[stop..].iter().any(|e| e == "start"),
        "app not started after its {}: {app_actions:?}",
        lifecycle[0]
    );
    let (app_die, side_die) = (events.first(&app, "die"), events.first(&sidekick, "die"));
    let (app_start, side_start) = (
        events.first(&app, "start"),
        events.first(&sidekick, "start"),
    );
    assert!(
        side_die < app_die,
        "the sidekick depends on the app: it must be stopped first (sidekick die {side_die}, app die {app_die})"
    );
    assert!(
        app_start < side_start,
        "the app must be started before its sidekick (app start {app_start}, sidekick start {side_start})"
    );
    for untouched in ["bystander", "postgres", "mariadb", "legacy"] {
        let id = stack.container(untouched);
        let raw: Vec<&str> = events
            .0
            .iter()
            .filter(|e| e.id == id)
            .map(|e| e.raw.as_str())
            .collect();
        assert_eq!(
            events.actions(&id),
            Vec::<String>::new(),
            "{untouched} was touched: {raw:#?}"
        );
    }
    (app_start - app_die) as f64 / 1e9
}

/// The dump of a run's report whose file (relative to `/databases`) is `file`.
pub fn dump_of<'a>(report: &'a serde_json::Value, file: &str) -> &'a serde_json::Value {
    report["dumps"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["file"] == file))
        .unwrap_or_else(|| panic!("no {file} in the report's dumps: {report}"))
}

/// Now, in unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A throwaway database container from a bench image, removed when dropped.
pub struct FreshDb {
    /// Container name.
    pub name: String,
}

impl FreshDb {
    /// Starts `image` with `env` and waits until `probe` (run with `docker exec`) succeeds.
    pub fn start(name: &str, image: &str, env: &[&str], probe: &[&str]) -> FreshDb {
        let _ = output(&mut docker(&["rm", "-f", name]));
        let mut c = docker(&["run", "-d", "--name", name]);
        for e in env {
            c.args(["-e", e]);
        }
        run(c.arg(image));
        let db = FreshDb {
            name: name.to_string(),
        };
        wait_for(&format!("{name} to accept connections"), 90, || {
            db.exec(&[], probe).status.success().then_some(())
        });
        db
    }

    /// `docker exec` in it, with environment.
    pub fn exec(&self, env: &[(&str, &str)], cmd: &[&str]) -> Output {
        let mut c = docker(&["exec"]);
        for (k, v) in env {
            c.args(["-e", &format!("{k}={v}")]);
        }
        output(c.arg(&self.name).args(cmd))
    }

    /// Feeds a file to `cmd`'s stdin inside the container; panics on failure.
    pub fn load(&self, env: &[(&str, &str)], cmd: &[&str], file: &Path) {
        let mut c = docker(&["exec", "-i"]);
        for (k, v) in env {
            c.args(["-e", &format!("{k}={v}")]);
        }
        c.arg(&self.name)
            .args(cmd)
            .stdin(std::fs::File::open(file).expect("dump file"));
        run(&mut c);
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        let _ = output(&mut docker(&["rm", "-f", "-v", &self.name]));
    }
}

/// The rows compared between a source database and one restored from a dump.
pub const PG_QUERY: &str = "select id, name, balance from customers order by id";
/// Likewise for MariaDB.
pub const MARIA_QUERY: &str = "select id, item, qty from orders order by id";

/// A fresh PostgreSQL from the bench image whose superuser is `user` (with
/// `POSTGRES_DB=db`), ready once it answers over TCP (the entrypoint's
/// init-time server listens on the socket only).
fn fresh_postgres(name: &str, user: &str, db: &str) -> FreshDb {
    let (user_env, db_env) = (format!("POSTGRES_USER={user}"), format!("POSTGRES_DB={db}"));
    FreshDb::start(
        name,
        "stackshot-test/postgres:local",
        &[&user_env, &db_env, "POSTGRES_PASSWORD=fresh"],
        &[
            "env",
            "PGPASSWORD=fresh",
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            user,
            "-d",
            db,
            "-c",
            "select 1",
        ],
    )
}

/// Loads a PostgreSQL dump (pg_dumpall) into a fresh server and checks it
/// returns the same rows and roles as the stack's database.
pub fn assert_pg_dump_restores(stack: &Stack, dump: &Path, name: &str) {
    let want = stack.psql(PG_QUERY).expect("source query");
    assert_eq!(want.lines().count(), 1000, "source has its seed data");
    let db = fresh_postgres(name, "postgres", "postgres");
    db.load(
        &[],
        &["psql", "-q", "-U", "postgres", "-d", "postgres"],
        dump,
    );
    let got = db.exec(&[], &["psql", "-U", "app", "-d", "appdb", "-Atc", PG_QUERY]);
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&got.stdout).trim(),
        want,
        "restored rows differ"
    );
    let roles = db.exec(
        &[],
        &[
            "psql",
            "-U",
            "postgres",
            "-Atc",
            "select rolname from pg_roles where rolname = 'reporting'",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&roles.stdout).trim(),
        "reporting",
        "roles come back with pg_dumpall"
    );
}

/// Loads a `pg_dump` of `appdb` (one database, no roles) into a fresh server
/// whose `appdb` and `app` exist (the `reporting` role its grants name is
/// made first), stopping at the first error, and checks it returns the
/// same rows as the stack's database.
pub fn assert_pg_database_dump_restores(stack: &Stack, dump: &Path, name: &str) {
    let want = stack.psql(PG_QUERY).expect("source query");
    assert_eq!(want.lines().count(), 1000, "source has its seed data");
    let db = fresh_postgres(name, "app", "appdb");
    let role = db.exec(
        &[],
        &[
            "psql",
            "-U",
            "app",
            "-d",
            "appdb",
            "-c",
            "CREATE ROLE reporting",
        ],
    );
    assert!(
        role.status.success(),
        "{}",
        String::from_utf8_lossy(&role.stderr)
    );
    db.load(
        &[],
        &[
            "psql",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            "app",
            "-d",
            "appdb",
        ],
        dump,
    );
    let got = db.exec(&[], &["psql", "-U", "app", "-d", "appdb", "-Atc", PG_QUERY]);
    assert_eq!(
        String::from_utf8_lossy(&got.stdout).trim(),
        want,
        "restored rows differ: {}",
        String::from_utf8_lossy(&got.stderr)
    );
}

/// Loads a MariaDB dump of `shop` into a fresh server and checks its rows.
pub fn assert_maria_dump_restores(stack: &Stack, dump: &Path, name: &str) {
    let want = stack.mariadb(MARIA_QUERY).expect("source query");
    assert_eq!(want.lines().count(), 4, "source has its seed data");
    let db = FreshDb::start(
        name,
        "stackshot-test/mariadb:local",
        &["MARIADB_ROOT_PASSWORD=fresh"],
        &[
            "env",
            "MYSQL_PWD=fresh",
            "mariadb",
            "-uroot",
            "-h",
            "127.0.0.1",
            "-e",
            "select 1",
        ],
    );
    db.load(&[("MYSQL_PWD", "fresh")], &["mariadb", "-uroot"], dump);
    let got = db.exec(
        &[("MYSQL_PWD", "fresh")],
        &["mariadb", "-uroot", "shop", "-Ne", MARIA_QUERY],
    );
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&got.stdout).trim(),
        want,
        "restored rows differ"
    );
}

/// Writes test files into the app's volume (through the container) and bind
/// mount (on the host); returns (sha of /data/blob.bin, sha of uploads/photo.bin).
pub fn seed_app_files(stack: &Stack) -> (String, String) {
    let out = stack.exec(
        "app",
        &[],
        &["sh", "-c", "head -c 5000000 /dev/urandom > /data/blob.bin && mkdir -p /data/tree/a/b && echo nested > /data/tree/a/b/c.txt && sha256sum /data/blob.bin"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let blob = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let photo = stack.dir.path().join("uploads/photo.bin");
    let mut random = vec![0u8; 1 << 20];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut random)
        .unwrap();
    std::fs::write(&photo, &random).unwrap();
    (blob, sha256_file(&photo))
}

/// What a test put into the stack before its backup, to compare after a
/// restore: the app's files (their SHA-256) and the databases' rows.
pub struct Seeded {
    /// `/data/blob.bin` in the app's volume.
    pub blob_sha: String,
    /// `uploads/photo.bin` in the bind mount.
    pub photo_sha: String,
    /// [`PG_QUERY`]'s rows.
    pub pg_rows: String,
    /// [`MARIA_QUERY`]'s rows.
    pub maria_rows: String,
}

impl Seeded {
    /// Seeds the app's files ([`seed_app_files`]) and reads the databases'
    /// rows.
    pub fn take(stack: &Stack) -> Seeded {
        let (blob_sha, photo_sha) = seed_app_files(stack);
        Seeded {
            blob_sha,
            photo_sha,
            pg_rows: stack.psql(PG_QUERY).expect("PostgreSQL rows"),
            maria_rows: stack.mariadb(MARIA_QUERY).expect("MariaDB rows"),
        }
    }

    /// The app's files, byte for byte, in a snapshot restored with plain
    /// restic into `restored`.
    pub fn assert_in_snapshot(&self, restored: &Path) {
        assert_eq!(
            sha256_file(&restored.join("volumes/app/data/blob.bin")),
            self.blob_sha
        );
        assert_eq!(
            sha256_file(&restored.join("volumes/app/uploads/photo.bin")),
            self.photo_sha
        );
    }

    /// Everything back in the running stack (after `restore all`): the
    /// app's files and both databases' rows.
    pub fn assert_back(&self, stack: &Stack) {
        let out = stack.exec("app", &[], &["sha256sum", "/data/blob.bin"]);
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with(&self.blob_sha),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            sha256_file(&stack.dir.path().join("uploads/photo.bin")),
            self.photo_sha
        );
        assert_eq!(stack.psql(PG_QUERY).as_deref(), Some(self.pg_rows.as_str()));
        assert_eq!(
            stack.mariadb(MARIA_QUERY).as_deref(),
            Some(self.maria_rows.as_str())
        );
    }
}

impl Stack {
    /// The disaster: containers and volumes gone (`down -v`; a repository
    /// kept outside the stack survives), the bind mount's photo deleted, and
    /// the stack up again with empty databases (`empty` as their init
    /// directory), once they serve.
    pub fn disaster(&mut self, empty: &Path) {
        let down = self.down();
        assert!(
            down.status.success(),
            "{}",
            String::from_utf8_lossy(&down.stderr)
        );
        std::fs::remove_file(self.dir.path().join("uploads/photo.bin")).unwrap();
        let empty = empty.to_str().unwrap();
        self.set_env("E2E_PG_INITDB", empty);
        self.set_env("E2E_MARIA_INITDB", empty);
        let up = self.compose(&["up", "-d", "--no-build"]);
        assert!(
            up.status.success(),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );
        self.wait_for_servers();
        assert!(
            self.psql("select count(*) from customers").is_none(),
            "the database must start empty"
        );
    }
}

/// Worker containers of compose project `project` still present on the
/// engine (only its own: other tests run beside it, with workers of theirs).
pub fn workers(project: &str) -> Vec<String> {
    run(&mut docker(&[
        "ps",
        "-aq",
        "--filter",
        "label=stackshot.role=worker",
        "--filter",
        &format!("label=stackshot.project={project}"),
    ]))
    .lines()
    .map(str::to_string)
    .collect()
}

/// Pids of the `restic restore` processes running in one of the
/// containers `ids` (short ids are enough), seen from the host. Only those:
/// a restic restore of a test running beside this one (S3's `restore all`,
/// say) is in another container, and signalling it would hang that test.
pub fn restic_restores_in(ids: &[String]) -> Vec<String> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if !cmd.starts_with(b"restic\0restore\0") {
            continue;
        }
        let pid = e.file_name().to_string_lossy().into_owned();
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if ids.iter().any(|id| cgroup.contains(id.as_str())) {
            pids.push(pid);
        }
    }
    pids
}

/// Sends `signal` (`STOP`, `CONT`, `KILL`) to the process `pid` of this
/// machine; false when there is no such process (any more).
pub fn signal_pid(pid: &str, signal: &str) -> bool {
    let out = output(Command::new("kill").args([&format!("-{signal}"), pid]));
    out.status.success()
}

/// Stops (SIGSTOP) the first `restic restore` of snapshot `snapshot` (its
/// id, or its first eight characters) on this machine, and gives its pid;
/// panics after `secs` without one. It reads only /proc, every 2 ms, with
/// no engine call: started on a thread before the restore, it catches even
/// a restore that ends within a second. The snapshot's id keeps it to this
/// test's own restore (other tests restore snapshots of their own).
pub fn stop_restic_restore_of(snapshot: &str, secs: u64) -> String {
    let short = &snapshot[..snapshot.len().min(8)];
    let start = std::time::Instant::now();
    loop {
        assert!(
            start.elapsed().as_secs() < secs,
            "no restic restore of snapshot {short} ran within {secs}s"
        );
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let mut args = cmd.split(|b| *b == 0);
            if args.next() == Some(b"restic")
                && args.next() == Some(b"restore")
                && args
                    .next()
                    .is_some_and(|id| id.starts_with(short.as_bytes()))
            {
                let pid = e.file_name().to_string_lossy().into_owned();
                // One that ended between the look and the signal is passed over.
                if signal_pid(&pid, "STOP") {
                    return pid;
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Stops (SIGSTOP) the `restic restore` of a worker of `project` as soon as
/// one runs, and gives its pid; panics after `secs` without one. The
/// workers are listed once they exist (a worker is created before its
/// restic starts), then /proc is read every 2 ms with no engine call in
/// between: a `docker ps` on a busy machine can take longer than a restore.
pub fn stop_restic_restore(project: &str, secs: u64) -> String {
    let start = std::time::Instant::now();
    loop {
        assert!(
            start.elapsed().as_secs() < secs,
            "no restic restore ran in a worker of {project} within {secs}s"
        );
        let ours = workers(project);
        if ours.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        }
        for _ in 0..500 {
            // One that ended between the look and the signal is passed over.
            if let [pid] = restic_restores_in(&ours).as_slice()
                && signal_pid(pid, "STOP")
            {
                return pid.clone();
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

/// Bytes the process `pid` has passed to write calls (`wchar` of
/// /proc/PID/io), or `None` once it is gone.
pub fn written_bytes(pid: &str) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|n| n.trim().parse().ok())
}

/// A plain HTTP/1.0 GET on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_as(port, path, None)
}

/// [`http_get`] as `user:password` (basic authentication) when given.
pub fn http_get_as(port: u16, path: &str, auth: Option<&str>) -> Option<(u16, String)> {
    use base64::Engine as _;
    use std::io::{Read, Write};
    use std::time::Duration;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let header = auth.map_or(String::new(), |a| {
        let encoded = base64::engine::general_purpose::STANDARD.encode(a);
        format!("Authorization: Basic {encoded}\r\n")
    });
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{header}\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let status = raw.split_whitespace().nth(1)?.parse().ok()?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// The value of one sample line `name{labels} value` in a text exposition.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The rclone binary scripts/install-test-deps installed (a static binary
/// with `serve s3` and `serve restic`, mounted into the bench's servers).
pub fn rclone() -> PathBuf {
    let out = std::process::Command::new("sh")
        .args(["-c", "command -v rclone"])
        .output()
        .expect("sh");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !path.is_empty(),
        "the S3 and REST benches need rclone (with `serve s3` and `serve restic`) on PATH: run scripts/install-test-deps"
    );
    std::fs::canonicalize(&path).unwrap()
}

/// stdout and stderr of `o`, together.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Drill containers and volumes of `project` left on the engine.
pub fn drill_leftovers(project: &str) -> String {
    let of_project = format!("label=stackshot.project={project}");
    let containers = run(&mut docker(&[
        "ps",
        "-aq",
        "--filter",
        "label=stackshot.role=drill",
        "--filter",
        &of_project,
    ]));
    let volumes = run(&mut docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        "label=stackshot.role=drill",
        "--filter",
        &of_project,
    ]));
    format!("{containers}{volumes}").trim().to_string()
}

/// Removes a directory of test-only pause files (`STACKSHOT_TEST_PAUSE_DIR`)
/// when dropped: every step a run holds goes on, so that a failed assertion
/// never leaves a run held.
pub struct Release<'a>(pub &'a Path);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0);
    }
}
