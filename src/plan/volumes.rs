//! Which of a container's mounts the plan backs up, at which snapshot path,
//! and which it leaves out and why. (How the worker container sees them is
//! [`super::mounts`].)

use std::collections::{BTreeMap, BTreeSet};

use globset::{Glob, GlobMatcher};

use super::{
    Building, ContainerRef, ExcludeReason, Exclusion, Plan, PlanOptions, VolumePlan,
    dump_dir_segment,
};
use crate::container::{ContainerInfo, Mount, MountKind};
use crate::labels::{BackupLabels, Engine};
use crate::layout::VOLUMES_DIR;

struct Filters {
    include: Vec<(String, GlobMatcher)>,
    exclude: Vec<(String, GlobMatcher)>,
}

fn compile(
    patterns: &[String],
    label: &str,
    errors: &mut Vec<String>,
    who: &str,
) -> Vec<(String, GlobMatcher)> {
    patterns
        .iter()
        .filter_map(|p| match Glob::new(p) {
            Ok(g) => Some((p.clone(), g.compile_matcher())),
            Err(e) => {
                errors.push(format!(
                    "{who}: label {label} has a bad glob {p:?} ({e}); accepted: comma-separated globs such as /data, /var/www/*, uploads-*"
                ));
                None
            }
        })
        .collect()
}

fn matches(
    globs: &[(String, GlobMatcher)],
    destination: &str,
    name: Option<&str>,
) -> Option<String> {
    globs
        .iter()
        .find(|(_, g)| g.is_match(destination) || name.is_some_and(|n| g.is_match(n)))
        .map(|(p, _)| p.clone())
}

/// True when `path` is `dir` or lies below it (or the reverse).
fn overlaps(a: &str, b: &str) -> bool {
    let a = a.trim_end_matches('/');
    let b = b.trim_end_matches('/');
    a == b
        || a.starts_with(&format!("{b}/"))
        || b.starts_with(&format!("{a}/"))
        || a.is_empty()
        || b.is_empty()
}

fn snapshot_segment(s: &str) -> String {
    s.trim_matches('/').to_string()
}

/// One container's mount selection: its labels' filters, its database's
/// data directory, and what its mounts came to so far.
struct Selection<'l> {
    labels: &'l BackupLabels,
    filters: Filters,
    /// The data directory of its database server (not SQLite's), if any.
    data_dir: Option<String>,
    /// The include patterns that matched a mount.
    included_by: BTreeSet<String>,
    /// How many of its mounts are backed up.
    backed_up: usize,
}

impl<'l> Selection<'l> {
    /// The selection for `c` with `labels`: a bad glob in them is an error.
    fn new(
        c: &ContainerInfo,
        who: &str,
        labels: &'l BackupLabels,
        errors: &mut Vec<String>,
    ) -> Self {
        let filters = Filters {
            include: compile(&labels.include, "stackshot.volumes.include", errors, who),
            exclude: compile(&labels.exclude, "stackshot.volumes.exclude", errors, who),
        };
        let data_dir = labels
            .engine
            .filter(|e| *e != Engine::Sqlite)
            .map(|e| match e {
                Engine::Postgres => c
                    .pgdata
                    .clone()
                    .unwrap_or_else(|| e.default_data_dir().to_string()),
                _ => e.default_data_dir().to_string(),
            });
        Selection {
            labels,
            filters,
            data_dir,
            included_by: BTreeSet::new(),
            backed_up: 0,
        }
    }

    /// Why `m` is left out, before duplicates are looked for; `None`: it is
    /// not. Notes the include pattern that matched it.
    fn leave_out(&mut self, m: &Mount, opts: &PlanOptions) -> Option<(ExcludeReason, String)> {
        if m.kind == MountKind::Other {
            return Some((
                ExcludeReason::UnsupportedMountType,
                "not a volume or bind mount".into(),
            ));
        }
        if m.kind == MountKind::Bind
            && (m.source.ends_with(".sock") || m.destination.ends_with(".sock"))
        {
            return Some((ExcludeReason::Socket, format!("{} is a socket", m.source)));
        }
        if let Some(dir) = self
            .data_dir
            .as_deref()
            .filter(|d| !self.labels.data_dir && overlaps(&m.destination, d))
        {
            return Some((
                ExcludeReason::DatabaseDataDirectory,
                format!(
                    "holds the database's data directory {dir}; the dump is the consistent copy"
                ),
            ));
        }
        if m.kind == MountKind::Bind && opts.exclude_bind_mounts {
            return Some((
                ExcludeReason::BindMountExcluded,
                "EXCLUDE_BIND_MOUNTS=true".into(),
            ));
        }
        if !self.filters.include.is_empty() {
            match matches(&self.filters.include, &m.destination, m.name.as_deref()) {
                Some(p) => {
                    self.included_by.insert(p);
                }
                None => {
                    return Some((
                        ExcludeReason::NotIncluded,
                        format!(
                            "matches none of stackshot.volumes.include {:?}",
                            self.labels.include
                        ),
                    ));
                }
            }
        }
        if let Some(p) = matches(&self.filters.exclude, &m.destination, m.name.as_deref()) {
            return Some((
                ExcludeReason::Excluded,
                format!("matches stackshot.volumes.exclude {p:?}"),
            ));
        }
        None
    }
}

/// Where `m` of `c` is in the snapshot: under `/volumes`, its project (every
/// project's plan), its container's directory, its destination.
fn snapshot_path(
    c: &ContainerInfo,
    m: &Mount,
    opts: &PlanOptions,
    replicas: &BTreeMap<(&str, &str), usize>,
) -> String {
    let mut path = String::from(VOLUMES_DIR);
    if opts.include_all_projects {
        path.push('/');
        path.push_str(&c.project);
    }
    path.push('/');
    path.push_str(&dump_dir_segment(c, replicas));
    let dest = snapshot_segment(&m.destination);
    if !dest.is_empty() {
        path.push('/');
        path.push_str(&dest);
    }
    path
}

/// The exclusions of a container without `stackshot.volumes=true`: the whole
/// container when no stackshot label wants it, else each of its mounts.
fn unlabelled(c: &ContainerInfo, labels: &BackupLabels, excluded: &mut Vec<Exclusion>) {
    let cref = ContainerRef::of(c);
    if !labels.wanted() {
        excluded.push(Exclusion {
            container: cref,
            mount: None,
            reason: ExcludeReason::NoLabel,
            detail: "no stackshot label: not stopped, not dumped, files not backed up".into(),
        });
    } else {
        for m in c.mounts.iter().filter(|m| m.kind != MountKind::Other) {
            excluded.push(Exclusion {
                container: cref.clone(),
                mount: Some(m.destination.clone()),
                reason: ExcludeReason::NoLabel,
                detail: "container has no stackshot.volumes=true label".into(),
            });
        }
    }
}

/// The volumes of `c` in the plan: each of its mounts backed up at its
/// snapshot path or left out with its reason, SQLite files left out of the
/// file pass, and warnings for an include pattern that matches nothing and
/// mounts that all stay out.
pub(super) fn volumes(
    building: &mut Building<'_>,
    c: &ContainerInfo,
    who: &str,
    labels: &BackupLabels,
) {
    if !labels.volumes {
        unlabelled(c, labels, &mut building.plan.excluded);
        return;
    }
    let cref = ContainerRef::of(c);
    let mut selection = Selection::new(c, who, labels, &mut building.plan.errors);
    for m in &c.mounts {
        let exclude = |reason, detail: String| Exclusion {
            container: cref.clone(),
            mount: Some(m.destination.clone()),
            reason,
            detail,
        };
        if let Some((reason, detail)) = selection.leave_out(m, building.opts) {
            building.plan.excluded.push(exclude(reason, detail));
            continue;
        }
        let source = match (m.kind, &m.name) {
            (MountKind::Volume, Some(n)) => n.clone(),
            _ => m.source.clone(),
        };
        let key = format!("{:?}:{source}", m.kind);
        if let Some(first) = building.seen_sources.get(&key) {
            building.plan.excluded.push(exclude(
                ExcludeReason::Duplicate,
                format!("{source} is already backed up at {first}"),
            ));
            continue;
        }
        let path = snapshot_path(c, m, building.opts, &building.replicas);
        building.seen_sources.insert(key, path.clone());
        selection.backed_up += 1;
        building.plan.volumes.push(VolumePlan {
            container: cref.clone(),
            kind: m.kind,
            source,
            destination: m.destination.clone(),
            snapshot_path: path,
        });
    }
    if labels.engine == Some(Engine::Sqlite) {
        sqlite_excludes(c, labels, &mut building.plan);
    }
    warnings(c, who, &selection, &mut building.plan.warnings);
}

/// The SQLite files `labels` name on `c`, and their `-wal`, `-shm` and
/// `-journal`, as paths in the snapshot: left out of the file pass.
fn sqlite_excludes(c: &ContainerInfo, labels: &BackupLabels, plan: &mut Plan) {
    for file in &labels.databases {
        let Some(v) = plan.volumes.iter().rev().find(|v| {
            v.container.id == c.id
                && file.starts_with(&format!("{}/", v.destination.trim_end_matches('/')))
        }) else {
            continue;
        };
        let rest = &file[v.destination.trim_end_matches('/').len()..];
        let at = format!("{}{rest}", v.snapshot_path);
        for suffix in ["", "-wal", "-shm", "-journal"] {
            plan.excludes.push(format!("{at}{suffix}"));
        }
    }
}

/// The warnings on `c`'s selection: an include pattern that matches no
/// mount, no mounts, or every mount left out (not a database's).
fn warnings(c: &ContainerInfo, who: &str, selection: &Selection, warnings: &mut Vec<String>) {
    let labels = selection.labels;
    for p in labels
        .include
        .iter()
        .filter(|p| !selection.included_by.contains(*p))
    {
        warnings.push(format!(
            "{who}: stackshot.volumes.include pattern {p:?} matches no mount"
        ));
    }
    if c.mounts.is_empty() {
        warnings.push(format!(
            "{who}: has stackshot.volumes=true but no volumes or bind mounts"
        ));
    } else if selection.backed_up == 0 && labels.engine.is_none() {
        warnings.push(format!(
            "{who}: has stackshot.volumes=true but every mount is left out (see excluded)"
        ));
    }
}
