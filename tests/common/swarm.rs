//! Docker Swarm on the test engine: the swarm the tests make and always
//! leave ([`Swarm`]), a second node as an engine inside a container of the
//! test engine ([`SecondNode`]), and the look at services and tasks the
//! swarm tests share.

use std::process::{Command, Output};

pub use super::text;
use super::{docker, output, root, run, wait_for};

/// The test engine in a swarm for the test's length, as its manager; `Drop`
/// removes the stack, leaves the swarm and removes the stack's volumes,
/// whatever the outcome.
pub struct Swarm {
    stack: String,
}

impl Swarm {
    /// `docker swarm init --advertise-addr <advertise>`, refusing an engine
    /// that is in a swarm already (the test would leave it at its end).
    pub fn init(stack: &str, advertise: &str) -> Swarm {
        let state = run(&mut docker(&[
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}}",
        ]));
        assert_eq!(
            state.trim(),
            "inactive",
            "the engine is already in a swarm; this test would leave it (docker swarm leave --force) at its end, so it refuses to run"
        );
        run(&mut docker(&[
            "swarm",
            "init",
            "--advertise-addr",
            advertise,
        ]));
        Swarm {
            stack: stack.to_string(),
        }
    }

    /// `docker stack deploy -c tests/stack/swarm/<file> <stack>`, with
    /// `E2E_REPOSITORY` and `E2E_SECRETS` for the stack file.
    pub fn deploy(&self, file: &str, repository: &std::path::Path, secrets: &std::path::Path) {
        let deploy = output(
            docker(&[
                "stack",
                "deploy",
                "-c",
                root()
                    .join("tests/stack/swarm")
                    .join(file)
                    .to_str()
                    .unwrap(),
                &self.stack,
            ])
            .env("E2E_REPOSITORY", repository)
            .env("E2E_SECRETS", secrets),
        );
        assert!(deploy.status.success(), "{}", text(&deploy));
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if std::env::var_os("STACKSHOT_KEEP_STACK").is_some() {
            eprintln!("STACKSHOT_KEEP_STACK: the swarm and the stack stay up");
            return;
        }
        let stack = self.stack.as_str();
        let _ = output(&mut docker(&["stack", "rm", stack]));
        // The tasks' containers go after the services; the volumes after them.
        for _ in 0..60 {
            let left = output(&mut docker(&[
                "ps",
                "-aq",
                "--filter",
                &format!("label=com.docker.stack.namespace={stack}"),
            ]));
            if left.stdout.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        let left = output(&mut docker(&["swarm", "leave", "--force"]));
        if !left.status.success() {
            eprintln!("docker swarm leave --force: {}", text(&left));
        }
        let volumes = output(&mut docker(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label=com.docker.stack.namespace={stack}"),
        ]));
        for v in String::from_utf8_lossy(&volumes.stdout).split_whitespace() {
            let _ = output(&mut docker(&["volume", "rm", "-f", v]));
        }
    }
}

/// An engine of the swarm: the test engine, or a second node's engine
/// inside a container of it (reached with `docker exec <node> docker …`).
#[derive(Clone, Copy)]
pub enum Engine<'a> {
    /// The test engine (the manager).
    Host,
    /// The engine in this container.
    In(&'a str),
}

impl Engine<'_> {
    /// `docker …` against this engine.
    pub fn docker(&self, args: &[&str]) -> Command {
        match self {
            Engine::Host => docker(args),
            Engine::In(node) => {
                let mut c = docker(&["exec", "-i", node, "docker"]);
                c.args(args);
                c
            }
        }
    }

    /// `docker exec <container> <cmd…>` on this engine.
    pub fn exec(&self, container: &str, cmd: &[&str]) -> Output {
        let mut c = self.docker(&["exec", container]);
        c.args(cmd);
        output(&mut c)
    }

    /// [`Engine::exec`] with `env` (`NAME=value`) set for `cmd`: the
    /// sidecar's image has no `env` program to do it.
    pub fn exec_env(&self, container: &str, env: &[&str], cmd: &[&str]) -> Output {
        let mut c = self.docker(&["exec"]);
        for e in env {
            c.args(["-e", e]);
        }
        c.arg(container).args(cmd);
        output(&mut c)
    }

    /// The one running task container of `<stack>_<service>` on this engine.
    pub fn task(&self, stack: &str, service: &str) -> String {
        wait_for(&format!("a running task of {service}"), 120, || {
            let out = output(&mut self.docker(&[
                "ps",
                "-q",
                "--no-trunc",
                "--filter",
                &format!("label=com.docker.swarm.service.name={stack}_{service}"),
                "--filter",
                "status=running",
            ]));
            let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (!id.is_empty() && !id.contains('\n')).then_some(id)
        })
    }

    /// The engine's node name (`docker info`'s `Name`).
    pub fn name(&self) -> String {
        run(&mut self.docker(&["info", "--format", "{{.Name}}"]))
            .trim()
            .to_string()
    }
}

/// A second swarm node: Debian's engine in a container of the test engine
/// (tests/bench/node-image.sh), with its own storage (vfs, in an anonymous
/// volume) and the host's cgroup tree (its namespace too) for its
/// containers, under a parent of its own. `Drop` stops its engine (which
/// stops its containers) and removes it.
///
/// Not `--privileged`: an engine whose bounding set lacks a capability
/// (CAP_SYS_RESOURCE on the machines this runs on) refuses that; every
/// other capability, no seccomp or AppArmor profile and writable cgroups
/// are what the inner engine needs.
pub struct SecondNode {
    /// The container (and the node's host name).
    pub name: String,
}

impl SecondNode {
    /// Starts the node's engine with `shared` host directories mounted at
    /// the same paths and loads `images` into it from the test engine.
    pub fn start(name: &str, shared: &[&std::path::Path], images: &[&str]) -> SecondNode {
        let out = output(Command::new("bash").arg(root().join("tests/bench/node-image.sh")));
        assert!(out.status.success(), "node-image.sh: {}", text(&out));
        let _ = output(&mut docker(&["rm", "-f", "-v", name]));
        let cgroup_parent = format!("/{name}");
        let mut c = docker(&[
            "run",
            "-d",
            "--init",
            "--name",
            name,
            "--hostname",
            name,
            "--cap-add",
            "ALL",
            "--cap-drop",
            "SYS_RESOURCE",
            "--security-opt",
            "apparmor=unconfined",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "systempaths=unconfined",
            "--cgroupns",
            "host",
            "-v",
            "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "-v",
            "/var/lib/docker",
        ]);
        for dir in shared {
            let d = dir.display().to_string();
            c.args(["-v", &format!("{d}:{d}")]);
        }
        c.args([
            "stackshot-test/node:local",
            "dockerd",
            "--storage-driver",
            "vfs",
            "--cgroup-parent",
            &cgroup_parent,
        ]);
        run(&mut c);
        let node = SecondNode {
            name: name.to_string(),
        };
        let engine = Engine::In(&node.name);
        wait_for(&format!("the engine of {name}"), 60, || {
            output(&mut engine.docker(&["info", "--format", "{{.ServerVersion}}"]))
                .status
                .success()
                .then_some(())
        });
        let mut save = docker(&["save"]);
        save.args(images);
        let mut saved = save.stdout(std::process::Stdio::piped()).spawn().unwrap();
        let load = engine
            .docker(&["load", "-q"])
            .stdin(saved.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(saved.wait().unwrap().success(), "docker save {images:?}");
        assert!(
            load.status.success(),
            "docker load on {name}: {}",
            text(&load)
        );
        node
    }

    /// The test engine's address as this node reaches it (its default
    /// route's gateway): where the manager advertises itself.
    pub fn gateway(&self) -> String {
        let route = run(&mut docker(&[
            "exec", &self.name, "ip", "-4", "route", "show", "default",
        ]));
        route
            .split_whitespace()
            .skip_while(|w| *w != "via")
            .nth(1)
            .unwrap_or_else(|| panic!("no default route in {}: {route}", self.name))
            .to_string()
    }

    /// Joins the swarm managed at `manager` (`addr:port`) as a worker.
    pub fn join(&self, manager: &str) {
        let token = run(&mut docker(&["swarm", "join-token", "-q", "worker"]));
        run(&mut self
            .engine()
            .docker(&["swarm", "join", "--token", token.trim(), manager]));
        wait_for(&format!("{} ready in the swarm", self.name), 60, || {
            let state = output(&mut docker(&[
                "node",
                "inspect",
                "--format",
                "{{.Status.State}}",
                &self.name,
            ]));
            (String::from_utf8_lossy(&state.stdout).trim() == "ready").then_some(())
        });
    }

    /// Its engine.
    pub fn engine(&self) -> Engine<'_> {
        Engine::In(&self.name)
    }
}

impl Drop for SecondNode {
    fn drop(&mut self) {
        if std::env::var_os("STACKSHOT_KEEP_STACK").is_some() {
            return;
        }
        let _ = output(&mut docker(&["stop", "-t", "30", &self.name]));
        let _ = output(&mut docker(&["rm", "-f", "-v", &self.name]));
        // What its containers left in the host's cgroup tree (empty by now).
        let _ = output(Command::new("sh").args([
            "-c",
            &format!(
                "for d in /sys/fs/cgroup/*/{0}; do [ -d \"$d\" ] && find \"$d\" -depth -type d -exec rmdir {{}} + ; done; true",
                self.name
            ),
        ]));
    }
}

/// Plain restic in a bench container, the repository at `mount` and a
/// restore target at `target` (both `host:container` mounts).
pub fn restic_with(mount: &str, target: &str, args: &[&str]) -> Output {
    let mut c = docker(&[
        "run",
        "--rm",
        "-v",
        mount,
        "-v",
        target,
        "-e",
        &format!("RESTIC_PASSWORD={}", super::RESTIC_PASSWORD),
        "-e",
        "RESTIC_REPOSITORY=/repository",
        "stackshot-test/base:local",
        "restic",
    ]);
    c.args(args);
    output(&mut c)
}

/// A field of `service`'s inspect, by a Go template (on the manager).
pub fn service_field(service: &str, format: &str) -> String {
    run(&mut docker(&[
        "service", "inspect", "--format", format, service,
    ]))
    .trim()
    .to_string()
}

/// The nodes holding `service` at 0 (its `stackshot.scaled.by` label).
pub fn held_by(service: &str) -> Option<String> {
    let labels: serde_json::Value =
        serde_json::from_str(&service_field(service, "{{json .Spec.Labels}}")).unwrap();
    labels["stackshot.scaled.by"].as_str().map(str::to_string)
}

/// `service` runs its one replica again, without stackshot's labels, and
/// its tasks' template is `template` still (the round trip through the
/// service API changed nothing else).
pub fn assert_scaled_back(service: &str, template: &str) {
    wait_for(&format!("{service} at 1/1"), 120, || {
        let out = run(&mut docker(&[
            "service",
            "ls",
            "--filter",
            &format!("name={service}"),
            "--format",
            "{{.Replicas}}",
        ]));
        (out.trim() == "1/1").then_some(())
    });
    let labels = service_field(service, "{{json .Spec.Labels}}");
    assert!(!labels.contains("stackshot.scaled"), "{labels}");
    assert_eq!(
        service_field(service, "{{json .Spec.TaskTemplate}}"),
        template
    );
}
