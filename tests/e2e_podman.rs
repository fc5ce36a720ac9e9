//! End to end on Podman, rootful and rootless, through its Docker-compatible
//! API: the test starts Debian's `podman system service` on a socket of its
//! own (rootful: with storage under `target/podman/`; rootless: as an
//! unprivileged user it creates, with that user's storage; the Docker
//! engine is never touched),
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

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::engines::{IMAGES, cycle, ensure_user, save_into};
use common::*;

/// The unprivileged user the rootless test runs Podman as (created with
/// its subordinate ids when missing).
const ROOTLESS_USER: &str = "stackshot-rootless";

/// A `podman system service` of the test's own, stopped when dropped:
/// rootful (as root), or rootless (as [`ROOTLESS_USER`]).
struct Podman {
    dir: PathBuf,
    user: Option<&'static str>,
    service: Child,
}

impl Podman {
    /// `podman` with the test's configuration: as root with storage of
    /// its own under `target/podman/`, or as the user with the user's.
    fn cmd(&self) -> Command {
        let conf = self.dir.join("containers.conf");
        match self.user {
            None => {
                let mut c = Command::new("podman");
                c.env("CONTAINERS_CONF", conf)
                    .arg("--root")
                    .arg(self.dir.join("root"))
                    .arg("--runroot")
                    .arg(self.dir.join("run"));
                c
            }
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", "env"])
                    .arg(format!("HOME=/home/{user}"))
                    .arg(format!("CONTAINERS_CONF={}", conf.display()))
                    .arg("podman");
                c
            }
        }
    }

    fn start(user: Option<&'static str>) -> Podman {
        let (dir, conf) = match user {
            None => (
                root().join("target/podman"),
                "[containers]\n\
                 default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
                 [engine]\n\
                 cgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\n",
            ),
            Some(user) => {
                ensure_user(user, 300_000);
                (
                    PathBuf::from(format!("/tmp/stackshot-podman-{user}")),
                    "[engine]\n\
                     cgroup_manager = \"cgroupfs\"\n\
                     events_logger = \"file\"\n",
                )
            }
        };
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("containers.conf"), conf).unwrap();
        if let Some(user) = user {
            chown_to(&dir, user);
        }
        let _ = std::fs::remove_file(dir.join("service.log"));
        let mut podman = Podman {
            dir,
            user,
            // Replaced below: a placeholder that has exited.
            service: Command::new("true").spawn().unwrap(),
        };
        let version = output(podman.cmd().arg("--version"));
        assert!(
            version.status.success(),
            "this test needs Debian's podman (scripts/install-test-deps installs it): {}",
            text(&version)
        );
        eprintln!("{}", String::from_utf8_lossy(&version.stdout).trim());
        podman.serve();
        podman
    }

    /// (Re)starts the API service on the test's socket and waits until it
    /// answers.
    fn serve(&mut self) {
        self.stop_service();
        let socket = self.socket();
        let _ = std::fs::remove_file(&socket);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("service.log"))
            .unwrap();
        self.service = self
            .cmd()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("podman system service");
        wait_for("Podman's API socket", 30, || {
            let ping = Command::new("docker")
                .env("DOCKER_HOST", self.host())
                .args(["version", "--format", "{{.Server.Version}}"])
                .output()
                .ok()?;
            ping.status.success().then_some(())
        });
    }

    /// Ends the API service.
    fn stop_service(&mut self) {
        // runuser passes the signal on to the rootless service.
        let _ = self.service.kill();
        let _ = self.service.wait();
        if let Some(user) = self.user {
            let _ = Command::new("pkill")
                .args(["-u", user, "-f", "podman system service"])
                .status();
        }
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
        let held = output(
            self.cmd()
                .args(["image", "inspect", "--format", "{{.Id}}", image]),
        );
        if held.status.success()
            && id.trim().trim_start_matches("sha256:")
                == String::from_utf8_lossy(&held.stdout).trim()
        {
            return;
        }
        let mut load = self.cmd();
        load.arg("load");
        save_into(image, load);
    }
}

impl Podman {
    /// Creates (and removes) a container of each image through the API
    /// service, as compose will, so that a storage that cannot copy an
    /// image's layer fails here, in a message that says why. A rootless CI
    /// run once failed to create the database containers ("open
    /// …/vfs/dir/<layer>/etc/redis: permission denied": a directory of mode
    /// 2770, which root in the user's namespace may read), and it has not
    /// been seen since. The namespace's maps, Podman's view of the storage
    /// and the service's log say what the process saw; then `podman system
    /// migrate` (a new namespace from /etc/subuid and /etc/subgid) and a new
    /// service are tried once.
    fn probe_images(&mut self) {
        let create = |podman: &Podman, image: &str| {
            let name = "stackshot-e2e-podman-probe";
            let api = |args: &[&str]| output(docker(args).env("DOCKER_HOST", podman.host()));
            let _ = api(&["rm", "-f", name]);
            let created = api(&["create", "--name", name, image, "true"]);
            let _ = api(&["rm", "-f", name]);
            created
                .status
                .success()
                .then_some(())
                .ok_or_else(|| text(&created))
        };
        for image in IMAGES {
            let Err(first) = create(self, image) else {
                continue;
            };
            let seen = self.diagnostics();
            self.stop_service();
            let migrate = output(self.cmd().args(["system", "migrate"]));
            self.serve();
            match create(self, image) {
                Ok(()) => eprintln!(
                    "podman could not create a container of {image} until `podman system migrate` and a new service: {first}\n{seen}\nmigrate: {}",
                    text(&migrate)
                ),
                Err(again) => panic!(
                    "podman cannot create a container of {image}: {first}\nafter `podman system migrate` and a new service: {again}\n{seen}\nnow: {}",
                    self.diagnostics()
                ),
            }
        }
    }

    /// What Podman's process sees: its user namespace's maps, the storage
    /// driver, the subordinate ids and the end of the service's log.
    fn diagnostics(&self) -> String {
        let mut seen = String::new();
        for args in [
            &["unshare", "cat", "/proc/self/uid_map", "/proc/self/gid_map"][..],
            &[
                "info",
                "--format",
                "{{.Store.GraphDriverName}} {{.Store.GraphRoot}} {{.Host.IDMappings}}",
            ],
        ] {
            seen += &format!(
                "podman {}: {}\n",
                args.join(" "),
                text(&output(self.cmd().args(args)))
            );
        }
        for file in ["/etc/subuid", "/etc/subgid"] {
            seen += &format!(
                "{file}: {:?}\n",
                std::fs::read_to_string(file).unwrap_or_default()
            );
        }
        let log = std::fs::read_to_string(self.dir.join("service.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        seen += &format!("service log (last lines, newest first): {tail:#?}");
        seen
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        self.stop_service();
    }
}

/// The cycle on rootful Podman, then the dependency order of a stack that
/// podman-compose brought up (on the same service, one after the other:
/// two rootful Podmans would share their locks and event log).
#[test]
fn plan_backup_restore_and_verify_on_podman() {
    let podman = started(None);
    cycle(&podman.socket(), None, "stackshot-e2e-podman");
    podman_compose_order(&podman);
}

/// The same cycle on rootless Podman: the service, the storage and every
/// container run as an unprivileged user, in a user namespace.
#[test]
fn plan_backup_restore_and_verify_on_rootless_podman() {
    let podman = started(Some(ROOTLESS_USER));
    cycle(
        &podman.socket(),
        podman.user,
        "stackshot-e2e-podman-rootless",
    );
}

/// Podman's service, holding the test images, behind `DOCKER_HOST`.
fn started(user: Option<&'static str>) -> Podman {
    // The images come from the Docker engine, built as for every test.
    bench();
    let mut podman = Podman::start(user);
    for image in IMAGES {
        podman.import(image);
    }
    podman.probe_images();
    // From here on every docker and docker-compose this test runs talks to
    // Podman. SAFETY: nextest runs this test alone in its process, and no
    // other thread reads the environment while it is set.
    unsafe { std::env::set_var("DOCKER_HOST", podman.host()) };
    let engine = run(&mut docker(&["version", "--format", "{{.Server.Version}}"]));
    eprintln!("the engine behind DOCKER_HOST: Podman {}", engine.trim());
    podman
}

/// A stack podman-compose brought up: podman-compose 1.0.6 writes no
/// `com.docker.compose.depends_on` label, and Podman's Docker-compatible
/// inspect does not show the `--requires` it passes instead. The sidecar
/// reads the order from Podman's own API: the plan puts app (which depends
/// on cache) in the first stop wave and cache in the second, the backup
/// stops app before cache and starts cache before app (seen on Podman's
/// event stream), and the snapshot holds both services' files.
fn podman_compose_order(podman: &Podman) {
    let project = "stackshot-e2e-podman-compose";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("restic-password"), RESTIC_PASSWORD).unwrap();
    let repo = tempfile::tempdir().unwrap();
    // podman-compose runs the podman program itself: this one uses the
    // test service's configuration and storage.
    let wrapper = podman.dir.join("podman-for-compose");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec env CONTAINERS_CONF={} podman --root {} --runroot {} \"$@\"\n",
            podman.dir.join("containers.conf").display(),
            podman.dir.join("root").display(),
            podman.dir.join("run").display(),
        ),
    )
    .unwrap();
    run(Command::new("chmod").arg("0755").arg(&wrapper));
    let compose = PodmanCompose {
        project,
        wrapper,
        env: vec![
            ("E2E_DIR", dir.path().to_path_buf()),
            ("E2E_REPOSITORY", repo.path().to_path_buf()),
            ("E2E_DOCKER_SOCKET", podman.socket()),
        ],
    };
    let version = run(&mut compose.cmd(&["version"]));
    eprintln!("{}", version.lines().next().unwrap_or_default());
    compose.down();
    run(&mut compose.cmd(&["up", "-d"]));
    let name = |service: &str| format!("{project}_{service}_1");
    for service in ["app", "cache"] {
        let marker = format!("{service} was here");
        run(&mut docker(&[
            "exec",
            &name(service),
            "bash",
            "-c",
            &format!("echo '{marker}' > /data/marker"),
        ]));
    }
    let backup = name("backup");
    wait_for("podman-compose's sidecar", 60, || {
        output(&mut docker(&["exec", &backup, "stackshot", "--version"]))
            .status
            .success()
            .then_some(())
    });

    // The plan: app stops in the first wave, cache in the second.
    let plan = output(&mut docker(&[
        "exec",
        &backup,
        "stackshot",
        "plan",
        "--json",
    ]));
    assert!(plan.status.success(), "{}", text(&plan));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let waves = stop_waves(&plan);
    assert_eq!(waves, [("app".into(), 0), ("cache".into(), 1)], "{plan}");

    // The backup, in that order on Podman's event stream.
    let since = unix_seconds();
    let out = output(&mut docker(&[
        "exec",
        &backup,
        "stackshot",
        "backup",
        "--json",
    ]));
    let until = unix_seconds() + 1;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("backup --json printed no report ({e}): {}", text(&out)));
    assert_eq!(out.status.code(), Some(0), "{report}\n{}", text(&out));
    assert_eq!(report["result"], "success", "{report}");
    let events = run(&mut docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]));
    let seen: Vec<&str> = events
        .lines()
        .filter(|l| l.starts_with("die ") || l.starts_with("start "))
        .filter(|l| l.ends_with(&name("app")) || l.ends_with(&name("cache")))
        .collect();
    let order = [
        format!("die {}", name("app")),
        format!("die {}", name("cache")),
        format!("start {}", name("cache")),
        format!("start {}", name("app")),
    ];
    assert_eq!(seen, order, "Podman's events:\n{events}");

    // The snapshot holds both markers.
    for service in ["app", "cache"] {
        let file = format!("/volumes/{service}/data/marker");
        let dumped = output(&mut docker(&[
            "exec", &backup, "restic", "dump", "latest", &file,
        ]));
        assert!(dumped.status.success(), "{}", text(&dumped));
        assert_eq!(
            String::from_utf8_lossy(&dumped.stdout).trim(),
            format!("{service} was here")
        );
    }
    compose.down();
}

/// podman-compose on the test's Podman, for one project.
struct PodmanCompose {
    project: &'static str,
    wrapper: PathBuf,
    env: Vec<(&'static str, PathBuf)>,
}

impl PodmanCompose {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman-compose");
        c.envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("--podman-path")
            .arg(&self.wrapper)
            .args(["-p", self.project, "-f"])
            .arg(root().join("tests/stack/podman-compose.yml"))
            .args(args);
        c
    }

    /// Takes the stack and its volumes down (nothing to take down is fine).
    fn down(&self) {
        let _ = output(&mut self.cmd(&["down", "-v"]));
    }
}

impl Drop for PodmanCompose {
    fn drop(&mut self) {
        self.down();
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
