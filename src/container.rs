//! stackshot's view of one container, built from the engine's inspect answer.
//! Pure: unit tests build it from recorded `docker inspect` JSON.

use std::collections::BTreeMap;

use bollard::models::{ContainerConfig, ContainerInspectResponse};
use serde::Serialize;

/// Compose's project label, naming the compose project a container belongs to.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// Compose's service label, naming the compose service a container runs.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// Compose's one-off label (`docker compose run`).
pub const ONEOFF_LABEL: &str = "com.docker.compose.oneoff";
/// Compose v2's dependency label (`svc:condition:restart,…`); compose v1 sets none.
pub const DEPENDS_ON_LABEL: &str = "com.docker.compose.depends_on";
/// Compose's replica number label.
pub const NUMBER_LABEL: &str = "com.docker.compose.container-number";
/// Swarm's stack label (`docker stack deploy`), on every task's container.
pub const STACK_LABEL: &str = "com.docker.stack.namespace";
/// Swarm's service name label (`<stack>_<service>`) on a task's container.
pub const SWARM_SERVICE_LABEL: &str = "com.docker.swarm.service.name";
/// Swarm's task name label (`<stack>_<service>.<slot>.<task id>`).
pub const SWARM_TASK_LABEL: &str = "com.docker.swarm.task.name";
/// The label stackshot puts on the containers it starts itself (workers,
/// drill containers). Not a setting: on a service, another value is a plan
/// error and one of [`ROLES`] a plan warning (see [`is_own_role`]).
pub const ROLE_LABEL: &str = "stackshot.role";

/// The compose project the containers stackshot starts itself belong to
/// (compose's own [`PROJECT_LABEL`] is not set on them).
pub const OWN_PROJECT_LABEL: &str = "stackshot.project";
/// The values of [`ROLE_LABEL`] stackshot sets.
pub const ROLES: [&str; 2] = ["worker", "drill"];

/// Whether a container whose [`ROLE_LABEL`] is `role` is one stackshot
/// started itself (a worker or a drill container): never planned nor
/// stopped. Another value does not make it one. Pure.
pub fn is_own_role(role: Option<&str>) -> bool {
    role.is_some_and(|r| ROLES.contains(&r))
}

/// What kind of mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A named or anonymous volume.
    Volume,
    /// A bind mount of a host path.
    Bind,
    /// Anything else (tmpfs, npipe, image…): never backed up.
    Other,
}

/// One mount of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// Whether the mount is a volume, a bind mount or something else.
    pub kind: MountKind,
    /// The volume's name (volumes only).
    pub name: Option<String>,
    /// Host path (binds) or the volume's path on the host.
    pub source: String,
    /// Where it is mounted in the container.
    pub destination: String,
    /// Whether the mount is read-write.
    pub rw: bool,
}

/// The parts of an inspected container that stackshot uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    /// The container's full id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Compose project (empty when not a compose container).
    pub project: String,
    /// Compose service (falls back to the container name).
    pub service: String,
    /// Compose replica number (1 when unknown).
    pub number: u32,
    /// Image reference as configured.
    pub image: String,
    /// Image id (`sha256:…`) the container runs.
    pub image_id: String,
    /// All of the container's labels, by name.
    pub labels: BTreeMap<String, String>,
    /// Names of the environment variables (values are not kept: they may be secrets).
    pub env_names: Vec<String>,
    /// The `--flags` of its entrypoint and command (`--requirepass`, not the
    /// value after it: values may be secrets).
    pub cmd_flags: Vec<String>,
    /// `PGDATA` from the environment, when set (where PostgreSQL keeps its data).
    pub pgdata: Option<String>,
    /// The container's mounts, as the engine reports them.
    pub mounts: Vec<Mount>,
    /// Running (or paused/restarting) now.
    pub running: bool,
    /// The engine's state word (running, exited, …).
    pub state: String,
    /// A `docker compose run` container.
    pub oneoff: bool,
    /// Services this one depends on (compose v2 label).
    pub depends_on: Vec<String>,
    /// Containers (id or name) this one depends on through
    /// `network_mode: container:…`/`service:…` or legacy links.
    pub depends_on_containers: Vec<String>,
    /// The swarm service (`<stack>_<service>`) whose task this container
    /// is; `None` outside swarm.
    pub swarm_service: Option<String>,
    /// The mode of that swarm service, as read from the service (only a
    /// manager node may read it); `None` outside swarm and on a worker node.
    pub swarm_mode: Option<ServiceMode>,
}

/// How a swarm service runs its tasks: what the stop window can do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceMode {
    /// `mode: replicated`: a replica count, which can be scaled to 0 and back.
    Replicated,
    /// `mode: global`: a task on every node, which cannot be scaled.
    Global,
    /// A job (`replicated-job`, `global-job`): runs to completion.
    Job,
}

impl ContainerInfo {
    /// Builds the view from an inspect answer.
    ///
    /// Its steps: the name, the compose or swarm identity (`identity`), the
    /// state, the command's flags (`cmd_flags`), the environment
    /// (`env_facts`), the mounts (`mounts`) and what it depends on
    /// (`depends_on`, `depends_on_containers`).
    pub fn from_inspect(c: &ContainerInspectResponse) -> ContainerInfo {
        let mut config = c.config.clone().unwrap_or_default();
        let labels: BTreeMap<String, String> = config
            .labels
            .take()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let name = c
            .name
            .clone()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        let Identity {
            project,
            service,
            number,
            swarm_service,
        } = identity(&labels, &name);
        let state = c.state.clone().unwrap_or_default();
        let state_word = state
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".into());
        let running = state.running.unwrap_or(false) || state.restarting.unwrap_or(false);
        let cmd_flags = cmd_flags(&config);
        let (pgdata, env_names) = env_facts(&config);
        let mounts = mounts(c);
        let depends_on = depends_on(&labels);
        let depends_on_containers = depends_on_containers(c);
        ContainerInfo {
            id: c.id.clone().unwrap_or_default(),
            name,
            project,
            service,
            number,
            image: config.image.unwrap_or_default(),
            image_id: c.image.clone().unwrap_or_default(),
            oneoff: labels
                .get(ONEOFF_LABEL)
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            labels,
            env_names,
            cmd_flags,
            pgdata,
            mounts,
            running,
            state: state_word,
            depends_on,
            depends_on_containers,
            swarm_service,
            swarm_mode: None,
        }
    }

    /// Short id, for tables and logs.
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }

    /// True when `reference` (an id, an id prefix of 12+ characters, or a name) names this container.
    pub fn is(&self, reference: &str) -> bool {
        let r = reference.trim_start_matches('/');
        r == self.name || r == self.id || (r.len() >= 12 && self.id.starts_with(r))
    }
}

/// Who a container is in its stack, as [`identity`] reads it.
struct Identity {
    /// Compose project, or swarm stack.
    project: String,
    /// Compose service, or the swarm service without its `<stack>_`.
    service: String,
    /// Compose replica number, or the swarm task's slot.
    number: u32,
    /// The swarm service of a swarm task.
    swarm_service: Option<String>,
}

/// Reads a container's project, service and number from compose's labels;
/// a swarm task (no compose project label) has them from swarm's: the stack
/// stands for the project, the service name without its `<stack>_` for the
/// service, the task's slot for the number. The service falls back to
/// `name`, the number to 1.
fn identity(labels: &BTreeMap<String, String>, name: &str) -> Identity {
    let swarm_service = labels
        .get(SWARM_SERVICE_LABEL)
        .filter(|_| !labels.contains_key(PROJECT_LABEL))
        .cloned();
    let stack = labels.get(STACK_LABEL).filter(|_| swarm_service.is_some());
    let project = labels
        .get(PROJECT_LABEL)
        .or(stack)
        .cloned()
        .unwrap_or_default();
    let service = labels
        .get(SERVICE_LABEL)
        .cloned()
        .or_else(|| {
            let full = swarm_service.as_deref()?;
            let short = stack
                .and_then(|st| full.strip_prefix(&format!("{st}_")))
                .unwrap_or(full);
            Some(short.to_string())
        })
        .unwrap_or_else(|| name.to_string());
    let slot = swarm_service.as_deref().and_then(|svc| {
        labels
            .get(SWARM_TASK_LABEL)?
            .strip_prefix(&format!("{svc}."))?
            .split('.')
            .next()?
            .parse()
            .ok()
    });
    let number = labels
        .get(NUMBER_LABEL)
        .and_then(|n| n.parse().ok())
        .or(slot)
        .unwrap_or(1);
    Identity {
        project,
        service,
        number,
        swarm_service,
    }
}

/// The `--flags` of the entrypoint and command, without their `=value`.
fn cmd_flags(config: &ContainerConfig) -> Vec<String> {
    config
        .entrypoint
        .iter()
        .flatten()
        .chain(config.cmd.iter().flatten())
        .filter(|a| a.starts_with("--"))
        .map(|a| a.split_once('=').map(|(f, _)| f).unwrap_or(a).to_string())
        .collect()
}

/// `PGDATA` when set and not empty, and the names of all the environment
/// variables (not their values).
fn env_facts(config: &ContainerConfig) -> (Option<String>, Vec<String>) {
    let env: &[String] = config.env.as_deref().unwrap_or_default();
    let pgdata = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PGDATA="))
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let env_names = env
        .iter()
        .map(|kv| kv.split_once('=').map(|(k, _)| k).unwrap_or(kv).to_string())
        .collect();
    (pgdata, env_names)
}

/// Reads the container's mounts from its inspect answer.
fn mounts(c: &ContainerInspectResponse) -> Vec<Mount> {
    c.mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| Mount {
            kind: match m.typ.as_deref() {
                Some("volume") => MountKind::Volume,
                Some("bind") => MountKind::Bind,
                _ => MountKind::Other,
            },
            name: m.name.filter(|n| !n.is_empty()),
            source: m.source.unwrap_or_default(),
            destination: m.destination.unwrap_or_default(),
            rw: m.rw.unwrap_or(true),
        })
        .collect()
}

/// The services compose v2's dependency label names.
fn depends_on(labels: &BTreeMap<String, String>) -> Vec<String> {
    labels
        .get(DEPENDS_ON_LABEL)
        .map(|v| {
            v.split(',')
                .filter_map(|d| d.split(':').next())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The containers whose network it shares (`network_mode: container:…`),
/// then those it links to.
fn depends_on_containers(c: &ContainerInspectResponse) -> Vec<String> {
    let host = c.host_config.clone().unwrap_or_default();
    let mut depends_on_containers: Vec<String> = Vec::new();
    if let Some(target) = host
        .network_mode
        .as_deref()
        .and_then(|m| m.strip_prefix("container:"))
    {
        depends_on_containers.push(target.to_string());
    }
    for link in host.links.unwrap_or_default() {
        // "/db_1:/app_1/db": the linked container's name comes first.
        if let Some(target) = link.split(':').next() {
            depends_on_containers.push(target.trim_start_matches('/').to_string());
        }
    }
    depends_on_containers
}

/// Parses the output of `docker inspect` (a JSON array) into containers.
pub fn from_inspect_json(json: &str) -> serde_json::Result<Vec<ContainerInfo>> {
    let raw: Vec<ContainerInspectResponse> = serde_json::from_str(json)?;
    Ok(raw.iter().map(ContainerInfo::from_inspect).collect())
}

/// What a stop entry's id starts with when it names a swarm service rather
/// than a container: `swarm-service:<stack>_<service>`. The journal keeps it
/// as it keeps a container id.
pub const SERVICE_TARGET: &str = "swarm-service:";

/// The stop target of a swarm service.
pub fn service_target(service: &str) -> String {
    format!("{SERVICE_TARGET}{service}")
}

/// The swarm service a stop target names, when it names one.
pub fn service_of(target: &str) -> Option<&str> {
    target.strip_prefix(SERVICE_TARGET)
}
