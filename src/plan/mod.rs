//! The plan: what a backup will stop, dump and snapshot, and what it leaves out
//! and why. Built by a pure function from inspected containers and options, so
//! every rule is tested on recorded fixtures without an engine.

mod checks;
mod diff;
mod dumps;
mod hooks;
pub mod mounts;
pub mod names;
mod order;
mod render;
mod scope;
pub mod swarm;
mod volumes;

use crate::config::copy::CopyShown;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::container::{ContainerInfo, MountKind};
use crate::labels::{self, BackupLabels, Engine};
use crate::layout::StopWindow;

pub use diff::{PlanSummary, changes};
pub use dumps::{REQUIREPASS, credentials, flag_value, sqlite_path_errors};
pub use render::render_table;

/// Stop waves for `stop` (a subset of `scope`): dependents first.
pub fn stop_order(scope: &[&ContainerInfo], stop: &[&ContainerInfo]) -> Vec<StopEntry> {
    order::stop_waves(scope, stop).0
}

/// The options that shape a plan (from the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOptions {
    /// The compose project being backed up.
    pub project: String,
    /// The host restic records the snapshots under (`--host`): `BACKUP_HOST`,
    /// else the discovered default.
    pub host: String,
    /// One snapshot for volumes and dumps together.
    pub atomic: bool,
    /// Every compose project on the engine, not only ours.
    pub include_all_projects: bool,
    /// Leave bind mounts out.
    pub exclude_bind_mounts: bool,
    /// Our own container's id, never part of a plan.
    pub self_id: Option<String>,
    /// Why the whole run uses the full stop window (`STOP_WINDOW=full`,
    /// split snapshots, a repository that cannot be merged); `None`: short.
    pub full_window: Option<String>,
    /// `APPEND_ONLY=true`: the repository refuses deletions.
    pub append_only: bool,
    /// The copy repository each successful run goes to (`COPY_REPOSITORY`).
    pub copy: Option<CopyShown>,
    /// `FREEZE_DURING_BACKUP=true`: the containers held in the window are
    /// frozen instead of stopped, unless their label says
    /// `stackshot.freeze-during-backup=false`.
    pub freeze: bool,
}

/// A container named in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerRef {
    /// The compose project the container belongs to.
    pub project: String,
    /// The compose service the container runs.
    pub service: String,
    /// The container's name.
    pub container: String,
    /// The container's full id.
    pub id: String,
}

impl ContainerRef {
    fn of(c: &ContainerInfo) -> Self {
        ContainerRef {
            project: c.project.clone(),
            service: c.service.clone(),
            container: c.name.clone(),
            id: c.id.clone(),
        }
    }
}

/// A container to stop for the stop window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StopEntry {
    /// The container to stop.
    #[serde(flatten)]
    pub container: ContainerRef,
    /// Stop wave: wave 0 first; containers of one wave stop concurrently, and
    /// start again in reverse wave order.
    pub wave: usize,
    /// The ids of the containers in this stop list that it depends on, directly
    /// or not (all in later waves): it starts again as soon as each of them has
    /// started, without waiting for the rest of their wave.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Running when the plan was made (a stopped container stays stopped).
    pub running: bool,
    /// `stackshot.exec.pre-stop`: run in it just before it is stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<Hook>,
    /// `stackshot.freeze-during-backup` (or `FREEZE_DURING_BACKUP`): a
    /// backup's window freezes it (the engine's pause) instead of stopping
    /// it; its files are then captured crash-consistent. A restore always
    /// stops it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub freeze: bool,
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookPhase {
    /// Before the stop window; a failure fails the run before anything is stopped.
    PreBackup,
    /// Just before its container is stopped, inside the window.
    PreStop,
    /// After the window, on every path.
    PostBackup,
}

impl HookPhase {
    /// The phase's name for logs and `stackshot plan`: `pre-backup`, `pre-stop` or `post-backup`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookPhase::PreBackup => "pre-backup",
            HookPhase::PreStop => "pre-stop",
            HookPhase::PostBackup => "post-backup",
        }
    }
}

/// A command run with `docker exec` (`sh -c`) in a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    /// The command, run with `sh -c`.
    pub command: String,
    /// How many seconds the command may run, from `stackshot.exec.timeout` (default 300).
    pub timeout_seconds: u64,
}

/// One hook of the run, in the order hooks run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookPlan {
    /// The container it runs in.
    #[serde(flatten)]
    pub container: ContainerRef,
    /// When in the run the hook runs.
    pub phase: HookPhase,
    /// The command the hook runs and its time limit.
    #[serde(flatten)]
    pub hook: Hook,
}

/// Where a credential comes from. Never holds a secret value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum CredentialSource {
    /// The container's environment variable.
    Env {
        /// The name of the variable that holds the credential.
        var: String,
    },
    /// A file named by the container's `…_FILE` variable, read inside that container.
    FileInContainer {
        /// Variable name (ending in `_FILE`).
        var: String,
    },
    /// A default, not a secret (a user name).
    Default {
        /// The value used: the engine's default user name.
        value: String,
    },
    /// The value after this flag in the container's command line (Redis's
    /// `redis-server --requirepass …`), read from its configuration.
    CommandArg {
        /// The flag whose value is the credential, such as `--requirepass`.
        flag: String,
    },
    /// Nothing found: connect without a password.
    None,
}

/// Credentials a dump will use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Credentials {
    /// Where the user name comes from.
    pub user: CredentialSource,
    /// Where the password comes from.
    pub password: CredentialSource,
}

/// One database container to dump: what it dumps, with which credentials, and the files it writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpPlan {
    /// The database container to dump.
    #[serde(flatten)]
    pub container: ContainerRef,
    /// The database engine the container's labels name.
    pub engine: Engine,
    /// Databases to dump; empty: all of them, with roles/users.
    pub databases: Vec<String>,
    /// Where the credentials come from.
    pub credentials: Credentials,
    /// Files written, as paths in the snapshot.
    pub outputs: Vec<String>,
    /// Pinned at the stop and dumped after the window (short window); false:
    /// dumped inside the window.
    pub pinned: bool,
    /// Why it is dumped inside the window, when it is.
    pub window_reason: Option<String>,
    /// `stackshot.volumes.data-dir=true`: its data directory is backed up as
    /// files too, the server stopped after its dump (full window).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub data_dir: bool,
}

/// One mount to back up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumePlan {
    /// The container it is reached through.
    #[serde(flatten)]
    pub container: ContainerRef,
    /// Whether the mount is a named volume or a bind mount.
    pub kind: MountKind,
    /// Volume name (volumes) or host path (binds).
    pub source: String,
    /// Destination in the container.
    pub destination: String,
    /// Path in the snapshot.
    pub snapshot_path: String,
}

/// Why something is left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExcludeReason {
    /// The container has no stackshot label asking for its files.
    NoLabel,
    /// A database's data directory: its dump is the consistent copy.
    DatabaseDataDirectory,
    /// A bind mount, left out because `EXCLUDE_BIND_MOUNTS=true`.
    BindMountExcluded,
    /// Not matched by `stackshot.volumes.include`.
    NotIncluded,
    /// Left out because it matches a glob of `stackshot.volumes.exclude`.
    Excluded,
    /// Not a volume or bind mount (tmpfs and the like).
    UnsupportedMountType,
    /// The same volume or host path is already backed up through another container.
    Duplicate,
    /// A socket (the docker socket, say): not data.
    Socket,
}

/// Something left out of the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exclusion {
    /// The container the left-out mount belongs to, or that is left out whole.
    #[serde(flatten)]
    pub container: ContainerRef,
    /// The mount's destination; `None`: the whole container.
    pub mount: Option<String>,
    /// Why it is left out.
    pub reason: ExcludeReason,
    /// A human-readable line on why, as `stackshot plan` shows it.
    pub detail: String,
}

/// Everything a backup will stop, dump, snapshot and leave out, with its warnings and errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The compose project being backed up.
    pub project: String,
    /// The host restic records the snapshots under (`--host`).
    pub host: String,
    /// One snapshot for volumes and dumps.
    pub atomic: bool,
    /// The stop window: `short` or `full` (a [`StopWindow`]'s name).
    pub window: String,
    /// Why the window is full, when it is.
    pub window_reason: Option<String>,
    /// The repository refuses deletions (`APPEND_ONLY=true`): the run's part
    /// snapshots stay, and retention is the server's.
    #[serde(default)]
    pub append_only: bool,
    /// The copy repository each successful run is copied to, after the
    /// window (`COPY_REPOSITORY`); `None`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<CopyShown>,
    /// Containers stopped for the window, in stop order.
    pub stop: Vec<StopEntry>,
    /// The database dumps to take, one per database container.
    pub dumps: Vec<DumpPlan>,
    /// The mounts to back up as files.
    pub volumes: Vec<VolumePlan>,
    /// Files left out of the file pass, as snapshot paths: SQLite files
    /// (their copy in `/databases` is the consistent one) and their `-wal`,
    /// `-shm` and `-journal`, which come and go while the app runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// Exec hooks, in the order they run: pre-backup, pre-stop (in stop
    /// order), post-backup.
    pub hooks: Vec<HookPlan>,
    /// What is left out, and why.
    pub excluded: Vec<Exclusion>,
    /// Things worth knowing that do not stop a backup.
    pub warnings: Vec<String>,
    /// Problems that stop a backup before any container is touched.
    pub errors: Vec<String>,
}

impl Plan {
    /// True when a backup may run from this plan.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The plan before its first step: the run's settings, nothing planned yet.
fn empty(opts: &PlanOptions) -> Plan {
    Plan {
        project: opts.project.clone(),
        host: opts.host.clone(),
        atomic: opts.atomic,
        window: if opts.full_window.is_some() {
            StopWindow::Full
        } else {
            StopWindow::Short
        }
        .as_str()
        .into(),
        window_reason: opts.full_window.clone(),
        append_only: opts.append_only,
        copy: opts.copy.clone(),
        stop: vec![],
        dumps: vec![],
        volumes: vec![],
        excludes: vec![],
        hooks: vec![],
        excluded: vec![],
        warnings: vec![],
        errors: vec![],
    }
}

/// What the steps of [`build`] share while it goes through the scope.
struct Building<'a> {
    /// The options the plan is built with.
    opts: &'a PlanOptions,
    /// The plan so far.
    plan: Plan,
    /// How many containers of each (project, service) are in scope: more than
    /// one numbers their directories.
    replicas: BTreeMap<(&'a str, &'a str), usize>,
    /// Each mount source already backed up (`Kind:source`), with its snapshot path.
    seen_sources: BTreeMap<String, String>,
    /// The containers to stop, in scope order.
    stop_set: Vec<&'a ContainerInfo>,
    /// The ids of those of them to freeze instead.
    frozen: BTreeSet<String>,
    /// Containers with exec hooks, in scope order, with their hooks.
    hooked: Vec<(&'a ContainerInfo, labels::Hooks)>,
}

/// Builds the plan. Pure: no engine, no clock, no file system.
///
/// Its steps: the scope; for each container in it, its checks, then its dump
/// (or its stop), then its volumes; then the rules on data directories copied
/// as files, the stop order, the hooks, and a warning when nothing is backed up.
pub fn build(opts: &PlanOptions, containers: &[ContainerInfo]) -> Plan {
    let mut plan = empty(opts);
    let scope = scope::select(opts, containers, &mut plan.warnings);
    let mut building = Building {
        opts,
        plan,
        replicas: scope::replicas(&scope),
        seen_sources: BTreeMap::new(),
        stop_set: Vec::new(),
        frozen: BTreeSet::new(),
        hooked: Vec::new(),
    };
    for &c in &scope {
        building.container(c);
    }
    let Building {
        mut plan,
        stop_set,
        frozen,
        hooked,
        ..
    } = building;
    dumps::data_dir_rules(&scope, &mut plan);
    order::stop_list(&scope, stop_set, &mut plan);
    // A swarm service's entry (not a container id) is never frozen.
    for e in &mut plan.stop {
        e.freeze = frozen.contains(&e.container.id);
    }
    hooks::plan_hooks(&hooked, &mut plan);
    if plan.volumes.is_empty() && plan.dumps.is_empty() && plan.errors.is_empty() {
        plan.warnings.push(
            "nothing to back up: label services with stackshot.volumes=true or stackshot.postgres/mariadb/mysql=true".into(),
        );
    }
    plan
}

impl<'a> Building<'a> {
    /// One container's part of the plan: its checks (a name that cannot be a
    /// path stops it there), then its dump or its stop, then its volumes.
    fn container(&mut self, c: &'a ContainerInfo) {
        // Names that become paths: a crafted one stops the plan here.
        if !checks::container_names(c, self.opts, &mut self.plan.errors) {
            return;
        }
        let who = format!("service {}", c.service);
        let labels: BackupLabels = labels::parse(&c.labels);
        if labels.hooks.any() {
            self.hooked.push((c, labels.hooks.clone()));
        }
        checks::labels(c, &who, &labels, &mut self.plan);
        if let Some(engine) = labels.engine {
            dumps::dump(self, c, &who, &labels, engine);
        } else if labels.held() {
            self.stop_set.push(c);
            if labels.freeze.unwrap_or(self.opts.freeze) {
                self.frozen.insert(c.id.clone());
            }
        }
        volumes::volumes(self, c, &who, &labels);
    }
}

/// The directory of `c` under `/databases` and `/volumes`: its service, with
/// its number when the service has more than one container in scope.
fn dump_dir_segment(c: &ContainerInfo, replicas: &BTreeMap<(&str, &str), usize>) -> String {
    if replicas
        .get(&(c.project.as_str(), c.service.as_str()))
        .copied()
        .unwrap_or(1)
        > 1
    {
        format!("{}-{}", c.service, c.number)
    } else {
        c.service.clone()
    }
}

#[cfg(test)]
mod tests;
