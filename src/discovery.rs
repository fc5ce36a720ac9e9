//! Discovery: our own container, our compose project, and the project's
//! containers with their labels and mounts, read from the engine.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::ListContainersOptions;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::config::Config;
use crate::container::{ContainerInfo, PROJECT_LABEL, STACK_LABEL, ServiceMode};
use crate::engine::podman;

/// The swarm node this stackshot runs on, in swarm mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmNode {
    /// The swarm node's id, as the engine reports it.
    pub id: String,
    /// The node's host name (the engine's `Name`).
    pub hostname: String,
    /// A manager node: only a manager may read services, so on a worker
    /// the services' own labels (`deploy.labels`) are not read.
    pub manager: bool,
}

/// What discovery found on the engine: the project, our own container, the
/// containers in scope and the swarm node.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The compose project to back up.
    pub project: String,
    /// Our own container, when we run in one.
    pub self_container: Option<ContainerInfo>,
    /// The containers in scope (our project, or all projects), ourselves included;
    /// the plan decides what to leave out.
    pub containers: Vec<ContainerInfo>,
    /// In swarm mode (our own container is a swarm task): the node. Only
    /// the stack's tasks on this node are in `containers`.
    pub swarm: Option<SwarmNode>,
}

impl Discovery {
    /// restic's `--host` when `BACKUP_HOST` is not set: the project, or in
    /// swarm mode `<stack>-<node hostname>` (each node backs up its own).
    pub fn default_host(&self) -> String {
        match &self.swarm {
            Some(node) => format!("{}-{}", self.project, node.hostname),
            None => self.project.clone(),
        }
    }
}

/// In swarm mode, the line `stackshot plan` starts with: the node and the
/// stack's tasks it sees (those on this node). Pure.
pub fn swarm_line(found: &Discovery, host: &str) -> Option<String> {
    let node = found.swarm.as_ref()?;
    let mut tasks: Vec<String> = found
        .containers
        .iter()
        .map(|c| format!("{}.{}", c.service, c.number))
        .collect();
    tasks.sort();
    let worker = if node.manager {
        ""
    } else {
        "; a worker node: the services' deploy.labels cannot be read here, only the containers' labels count"
    };
    Some(format!(
        "swarm node {} ({}), stack {}: {} task(s) on this node: {}; backed up as host {}{worker}",
        node.hostname,
        &node.id[..node.id.len().min(12)],
        found.project,
        tasks.len(),
        tasks.join(", "),
        host
    ))
}

/// Adds each swarm service's own labels (`deploy.labels` in the stack file)
/// to its tasks' containers, a container's own label winning over its
/// service's, and notes the service's mode. The labels stackshot itself
/// keeps on a service it holds scaled down (`stackshot.scaled.*`) are state,
/// not settings, and are not added. Pure.
pub fn add_service_labels(containers: &mut [ContainerInfo], services: &[bollard::models::Service]) {
    for c in containers {
        let Some(name) = &c.swarm_service else {
            continue;
        };
        let Some(spec) = services
            .iter()
            .filter_map(|s| s.spec.as_ref())
            .find(|spec| spec.name.as_deref() == Some(name.as_str()))
        else {
            continue;
        };
        for (k, v) in spec.labels.clone().unwrap_or_default() {
            if !k.starts_with(crate::engine::scale::STATE_LABEL_PREFIX) {
                c.labels.entry(k).or_insert(v);
            }
        }
        let mode = spec.mode.as_ref();
        c.swarm_mode = Some(if mode.is_some_and(|m| m.global.is_some()) {
            ServiceMode::Global
        } else if mode.is_some_and(|m| m.replicated_job.is_some() || m.global_job.is_some()) {
            ServiceMode::Job
        } else {
            ServiceMode::Replicated
        });
    }
}

/// Finds the id of the container this process runs in from the text of
/// `/proc/self/mountinfo`. Docker bind-mounts
/// `<data-root>/containers/<id>/{resolv.conf,hostname,hosts}` into every
/// container; Podman mounts the same files from
/// `<storage>/<driver>-containers/<id>/userdata/` (`overlay-containers`
/// rootful, `vfs-containers` rootless without fuse-overlayfs), with
/// `.containerenv`.
pub fn container_id_from_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        line.split_whitespace()
            .find_map(|field| own_mount(&field.split('/').collect::<Vec<_>>()))
    })
}

/// The container id in a mount source's path `parts`, when the path is one
/// of the engine's own files of that container. The last such place wins:
/// a storage path may itself hold one.
fn own_mount(parts: &[&str]) -> Option<String> {
    let is_id = |id: &str| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let engine_file = |f: &str| matches!(f, "resolv.conf" | "hostname" | "hosts");
    (0..parts.len()).rev().find_map(|i| match &parts[i..] {
        // Podman: <storage>/<driver>-containers/<id>/userdata/<file>
        [dir, id, "userdata", file]
            if dir.ends_with("-containers")
                && is_id(id)
                && (engine_file(file) || *file == ".containerenv") =>
        {
            Some(id.to_string())
        }
        // Docker: <data-root>/containers/<id>/<file>
        ["containers", id, file] if is_id(id) && engine_file(file) => Some(id.to_string()),
        _ => None,
    })
}

fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

async fn inspect(docker: &Docker, reference: &str) -> Result<Option<ContainerInfo>, BollardError> {
    match docker.inspect_container(reference, None).await {
        Ok(c) => Ok(Some(ContainerInfo::from_inspect(&c))),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether stackshot runs in swarm mode: as `SWARM_MODE` says, or when it is
/// unset (`auto`) when our own container is a swarm task. A setting that
/// contradicts our container is refused in one line. Pure.
pub fn swarm_mode(setting: Option<bool>, own: Option<&ContainerInfo>) -> Result<bool> {
    let task = own.is_some_and(|c| c.swarm_service.is_some());
    match (setting, own) {
        (None, _) => Ok(task),
        (Some(true), Some(c)) if !task => bail!(
            "SWARM_MODE=true, but stackshot's container {} is not a swarm task; deploy stackshot as a service of the stack (docker stack deploy), or unset SWARM_MODE",
            c.name
        ),
        (Some(false), Some(c)) if task => bail!(
            "SWARM_MODE=false, but stackshot runs as a task of the swarm stack {}, whose containers belong to no compose project; unset SWARM_MODE (or set it to true)",
            c.project
        ),
        (Some(on), _) => Ok(on),
    }
}

/// Finds our container and project, then lists and inspects the containers in scope.
pub async fn discover(docker: &Docker, config: &Config) -> Result<Discovery> {
    let self_ref = match &config.self_container {
        Some(r) => Some((r.clone(), "STACKSHOT_CONTAINER")),
        None => std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|m| container_id_from_mountinfo(&m))
            .map(|id| (id, "/proc/self/mountinfo")),
    };
    let self_container = match &self_ref {
        None => None,
        Some((reference, from)) => match inspect(docker, reference)
            .await
            .with_context(|| format!("cannot inspect our own container {reference}"))?
        {
            Some(c) => Some(c),
            None if *from == "STACKSHOT_CONTAINER" => bail!(
                "STACKSHOT_CONTAINER={reference:?}: no such container; accepted: the id or name of the container stackshot runs in"
            ),
            // Running in a container of another engine (or a sandbox): not ours to inspect.
            None => None,
        },
    };
    let project = match (&config.project, &self_container) {
        (Some(p), _) => p.clone(),
        (None, Some(c)) if !c.project.is_empty() => c.project.clone(),
        (None, Some(c)) => bail!(
            "container {} is not part of a compose project; run stackshot as a service of the stack, or set STACKSHOT_PROJECT",
            c.name
        ),
        (None, None) => bail!(
            "cannot tell which compose project to back up: stackshot is not running in a container of this engine; set STACKSHOT_PROJECT (and STACKSHOT_CONTAINER if it does run in one)"
        ),
    };

    let swarm = swarm_mode(config.swarm_mode, self_container.as_ref())?;
    let label_filter = if swarm {
        // Every task of the stack on this engine (this node).
        format!("{STACK_LABEL}={project}")
    } else if config.include_all_projects {
        PROJECT_LABEL.to_string()
    } else {
        format!("{PROJECT_LABEL}={project}")
    };
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([("label".to_string(), vec![label_filter])])),
        ..Default::default()
    };
    let summaries = docker
        .list_containers(Some(options))
        .await
        .context("cannot list containers")?;
    let ids: Vec<String> = summaries.into_iter().filter_map(|s| s.id).collect();
    let mut containers: Vec<ContainerInfo> = stream::iter(ids)
        .map(|id| async move {
            inspect(docker, &id)
                .await
                .with_context(|| format!("cannot inspect container {id}"))
        })
        .buffer_unordered(8)
        .try_filter_map(|c| async move { Ok(c) })
        .try_collect()
        .await?;
    podman_requirements(docker, &mut containers).await;
    if swarm {
        // A swarm never starts a task's container again: one that does not
        // run is an old task (swarm keeps a few), not part of the stack now.
        containers.retain(|c| c.running || c.swarm_service.is_none());
    }
    let node = if swarm {
        Some(swarm_node(docker, &mut containers).await?)
    } else {
        None
    };
    tracing::debug!(project, count = containers.len(), "discovered containers");
    Ok(Discovery {
        project,
        self_container,
        containers,
        swarm: node,
    })
}

/// Adds podman-compose's `depends_on` to its containers: Podman keeps it as
/// the containers each one requires, which only its own API tells (see
/// [`crate::engine::podman`]). Containers no podman-compose created are not
/// asked about. When the answer cannot be read (a socket proxy that allows
/// only Docker's paths, say), the order stays unknown and a warning says so:
/// the containers still stop and start, in no order of their own.
async fn podman_requirements(docker: &Docker, containers: &mut [ContainerInfo]) {
    for c in containers
        .iter_mut()
        .filter(|c| c.labels.contains_key(podman::PODMAN_COMPOSE_LABEL))
    {
        match podman::dependencies(docker, &c.id).await {
            Ok(ids) => add_requirements(c, ids),
            Err(e) => tracing::warn!(
                container = %c.name,
                error = %format!("{e:#}"),
                "podman-compose's depends_on order is unknown for this container: Podman's own API (/libpod/containers/<id>/json) did not answer; allow it through the socket proxy, or set the order with com.docker.compose.depends_on"
            ),
        }
    }
}

/// Adds the containers `c` requires (ids, as Podman names them) to those it
/// depends on. Pure.
pub fn add_requirements(c: &mut ContainerInfo, ids: Vec<String>) {
    for id in ids {
        if !c.depends_on_containers.contains(&id) {
            c.depends_on_containers.push(id);
        }
    }
}

/// In swarm mode: the node we are on, and the services' labels added to
/// their tasks' containers.
async fn swarm_node(docker: &Docker, containers: &mut [ContainerInfo]) -> Result<SwarmNode> {
    let info = docker
        .info()
        .await
        .context("cannot ask the engine which swarm node it is")?;
    let swarm = info.swarm.unwrap_or_default();
    let node = SwarmNode {
        id: swarm
            .node_id
            .filter(|id| !id.is_empty())
            .context(
                "swarm mode, but this engine is not a swarm node; run stackshot on a node of the swarm, or unset SWARM_MODE",
            )?,
        hostname: info.name.unwrap_or_default(),
        manager: swarm.control_available.unwrap_or(false),
    };
    if !node.manager {
        tracing::warn!(
            node = %node.hostname,
            "a swarm worker node cannot read services: the services' deploy.labels are not read here, only the containers' labels"
        );
        return Ok(node);
    }
    let mut names: Vec<String> = containers
        .iter()
        .filter_map(|c| c.swarm_service.clone())
        .collect();
    names.sort();
    names.dedup();
    let mut services = Vec::new();
    for name in names {
        let service = docker
            .inspect_service(&name, None)
            .await
            .with_context(|| format!("cannot inspect the swarm service {name}"))?;
        services.push(service);
    }
    add_service_labels(containers, &services);
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::from_inspect_json;

    #[test]
    fn swarm_mode_follows_our_container_unless_set() {
        let task = recorded().0.remove(0);
        let plain = from_inspect_json(include_str!("../tests/fixtures/stack-inspect.json"))
            .unwrap()
            .remove(0);
        assert!(swarm_mode(None, Some(&task)).unwrap());
        assert!(!swarm_mode(None, Some(&plain)).unwrap());
        assert!(!swarm_mode(None, None).unwrap());
        assert!(swarm_mode(Some(true), Some(&task)).unwrap());
        assert!(!swarm_mode(Some(false), Some(&plain)).unwrap());
        // Outside a container (STACKSHOT_PROJECT naming the stack).
        assert!(swarm_mode(Some(true), None).unwrap());
        let e = swarm_mode(Some(true), Some(&plain))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "SWARM_MODE=true, but stackshot's container {} is not a swarm task;",
                plain.name
            )),
            "{e}"
        );
        let e = swarm_mode(Some(false), Some(&task))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "SWARM_MODE=false, but stackshot runs as a task of the swarm stack {},",
                task.project
            )),
            "{e}"
        );
    }

    /// The recorded tasks' containers and their services, as inspected.
    fn recorded() -> (Vec<ContainerInfo>, Vec<bollard::models::Service>) {
        (
            from_inspect_json(include_str!("../tests/fixtures/swarm-inspect.json")).unwrap(),
            serde_json::from_str(include_str!("../tests/fixtures/swarm-service-inspect.json"))
                .unwrap(),
        )
    }

    /// Tasks of the stack `swt` recorded on a single-node swarm (an app with
    /// its stackshot labels under `deploy.labels`, PostgreSQL with its label
    /// on the container), and their services.
    fn swarm_tasks() -> Vec<ContainerInfo> {
        let (mut containers, services) = recorded();
        add_service_labels(&mut containers, &services);
        containers.sort_by(|a, b| a.service.cmp(&b.service));
        containers
    }

    #[test]
    fn a_swarm_task_is_read_as_its_stack_and_service_with_the_service_labels() {
        let c = swarm_tasks();
        assert_eq!(c.len(), 2);
        let (app, pg) = (&c[0], &c[1]);
        assert_eq!(
            (app.project.as_str(), app.service.as_str(), app.number),
            ("swt", "app", 1)
        );
        assert_eq!(app.swarm_service.as_deref(), Some("swt_app"));
        // deploy.labels, from the service.
        assert_eq!(
            app.labels.get("stackshot.volumes").map(String::as_str),
            Some("true")
        );
        assert_eq!(
            app.labels
                .get("stackshot.stop-during-backup")
                .map(String::as_str),
            Some("true")
        );
        // A container label, kept.
        assert_eq!(
            (pg.project.as_str(), pg.service.as_str()),
            ("swt", "postgres")
        );
        assert_eq!(
            pg.labels.get("stackshot.postgres").map(String::as_str),
            Some("true")
        );
    }

    #[test]
    fn a_container_label_wins_over_its_service_label() {
        let (mut containers, mut services) = recorded();
        for s in &mut services {
            let spec = s.spec.as_mut().unwrap();
            spec.labels
                .get_or_insert_with(Default::default)
                .insert("stackshot.postgres".into(), "false".into());
        }
        add_service_labels(&mut containers, &services);
        let pg = containers.iter().find(|c| c.service == "postgres").unwrap();
        assert_eq!(
            pg.labels.get("stackshot.postgres").map(String::as_str),
            Some("true")
        );
    }

    #[test]
    fn a_swarm_plan_stops_the_service_and_names_the_node() {
        let containers = swarm_tasks();
        let found = Discovery {
            project: "swt".into(),
            self_container: None,
            containers: containers.clone(),
            swarm: Some(SwarmNode {
                id: "tv2b90dzdntlrermzm2fijw8e".into(),
                hostname: "node-1".into(),
                manager: true,
            }),
        };
        assert_eq!(found.default_host(), "swt-node-1");
        assert_eq!(
            swarm_line(&found, "swt-node-1").unwrap(),
            "swarm node node-1 (tv2b90dzdntl), stack swt: 2 task(s) on this node: app.1, postgres.1; backed up as host swt-node-1"
        );
        let mut on_worker = found.clone();
        on_worker.swarm.as_mut().unwrap().manager = false;
        assert!(
            swarm_line(&on_worker, "swt-node-1")
                .unwrap()
                .ends_with("; a worker node: the services' deploy.labels cannot be read here, only the containers' labels count")
        );
        let opts = crate::plan::PlanOptions {
            project: "swt".into(),
            host: found.default_host(),
            atomic: true,
            include_all_projects: false,
            exclude_bind_mounts: false,
            self_id: None,
            full_window: None,
            append_only: false,
            copy: None,
            freeze: false,
        };
        // The app's task: its service is stopped (scaled to 0), once.
        let plan = crate::plan::build(&opts, &containers);
        assert!(plan.is_ok(), "{:?}", plan.errors);
        let stops: Vec<(&str, &str)> = plan
            .stop
            .iter()
            .map(|e| (e.container.id.as_str(), e.container.container.as_str()))
            .collect();
        assert_eq!(stops, [("swarm-service:swt_app", "swt_app")]);
        let table = crate::plan::render_table(&plan);
        assert!(
            table.contains("swt_app") && table.contains("swarm service: scaled to 0 and back"),
            "{table}"
        );
        assert_eq!(plan.dumps.len(), 1);
        assert_eq!(plan.volumes.len(), 1, "{:?}", plan.volumes);
        // Read on a worker node (no service mode): refused in one line.
        let mut unread = containers.clone();
        for c in &mut unread {
            c.swarm_mode = None;
        }
        let plan = crate::plan::build(&opts, &unread);
        assert!(plan.stop.is_empty(), "{:?}", plan.stop);
        assert_eq!(plan.errors.len(), 1, "{:?}", plan.errors);
        assert!(
            plan.errors[0].starts_with(
                "app: stackshot.stop-during-backup: the swarm service swt_app is stopped by scaling it to 0, which only a manager node may do"
            ),
            "{}",
            plan.errors[0]
        );
        // A database's data directory copy would stop its task: refused.
        let mut copied = containers.clone();
        copied[1]
            .labels
            .insert("stackshot.volumes.data-dir".into(), "true".into());
        let plan = crate::plan::build(&opts, &copied);
        assert!(
            plan.errors.iter().any(|e| e
                .starts_with("postgres: stackshot.volumes.data-dir is not supported in a swarm")),
            "{:?}",
            plan.errors
        );
        // Without the label nothing is stopped.
        let mut calm = containers;
        calm[0].labels.remove("stackshot.stop-during-backup");
        let plan = crate::plan::build(&opts, &calm);
        assert!(plan.is_ok(), "{:?}", plan.errors);
        assert!(plan.stop.is_empty());
    }

    #[test]
    fn the_service_mode_is_read_and_the_scaling_state_is_no_setting() {
        let (mut containers, mut services) = recorded();
        let spec = services[0].spec.as_mut().unwrap();
        let held = spec.name.clone().unwrap();
        spec.labels
            .get_or_insert_with(Default::default)
            .insert(crate::engine::scale::HELD_BY.into(), "node-2".into());
        add_service_labels(&mut containers, &services);
        for c in &containers {
            assert_eq!(c.swarm_mode, Some(ServiceMode::Replicated), "{}", c.name);
            assert!(!c.labels.contains_key(crate::engine::scale::HELD_BY));
        }
        assert!(
            containers
                .iter()
                .any(|c| c.swarm_service.as_deref() == Some(held.as_str()))
        );
        services[0].spec.as_mut().unwrap().mode = Some(bollard::models::ServiceSpecMode {
            global: Some(Default::default()),
            ..Default::default()
        });
        add_service_labels(&mut containers, &services);
        let c = containers
            .iter()
            .find(|c| c.swarm_service.as_deref() == Some(held.as_str()))
            .unwrap();
        assert_eq!(c.swarm_mode, Some(ServiceMode::Global));
    }

    #[test]
    fn finds_id_in_mountinfo() {
        let id = "4f66c7ba7a1bd0f4b3b4a4bd7f5e3f6b0c2b4d1e7a9c3d2e1f0a9b8c7d6e5f4a";
        let mountinfo = format!(
            "1193 1176 0:133 / / rw,relatime master:350 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X\n\
             1209 1193 254:1 /var/lib/docker/containers/{id}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda1 rw\n\
             1210 1193 254:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw,relatime - ext4 /dev/vda1 rw\n"
        );
        assert_eq!(container_id_from_mountinfo(&mountinfo).as_deref(), Some(id));
    }

    /// Recorded in a container of Podman 4.3 (rootful, Debian bookworm):
    /// no `/containers/<id>/` of Docker's, `overlay-containers/<id>/userdata/`.
    #[test]
    fn finds_id_in_podmans_mountinfo() {
        let m = include_str!("../tests/fixtures/podman/mountinfo-4.3-rootful.txt");
        let id = container_id_from_mountinfo(m).expect("an id in Podman's mountinfo");
        assert_eq!(id.len(), 64);
        assert!(m.contains(&format!(
            "overlay-containers/{id}/userdata/hostname /etc/hostname"
        )));
        // Another file under a Podman container's userdata is not its own mount.
        let other = m.replace("/userdata/", "/userdata/x/");
        assert_eq!(container_id_from_mountinfo(&other), None);
    }

    /// Recorded in a container of rootless Podman 4.3 (Debian bookworm,
    /// the vfs driver: no fuse-overlayfs there): `vfs-containers/<id>/`.
    #[test]
    fn finds_id_in_rootless_podmans_mountinfo() {
        let m = include_str!("../tests/fixtures/podman/mountinfo-4.3-rootless-vfs.txt");
        let id = container_id_from_mountinfo(m).expect("an id in rootless Podman's mountinfo");
        assert!(m.contains(&format!(
            "vfs-containers/{id}/userdata/hostname /etc/hostname"
        )));
    }

    #[test]
    fn custom_data_root_and_no_container() {
        let id = "a".repeat(64);
        let m = format!(
            "1 2 0:1 /srv/docker-data/containers/{id}/hosts /etc/hosts rw - ext4 /dev/x rw\n"
        );
        assert_eq!(container_id_from_mountinfo(&m), Some(id));
        assert_eq!(
            container_id_from_mountinfo("22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"),
            None
        );
        // A volume merely named "containers" is not a container's own mount.
        let m = "1 2 0:1 /var/lib/docker/volumes/containers/_data /data rw - ext4 /dev/x rw\n";
        assert_eq!(container_id_from_mountinfo(m), None);
    }
}
