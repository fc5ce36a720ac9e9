//! Where the worker container sees what it works on: the plan's mounts at
//! their snapshot paths under [`VOLUMES_DIR`], and the sidecar's own mounts
//! (repository, cache, `/databases`) at the same places. Pure.

use bollard::models::{Mount as EngineMount, MountType};

use super::{Plan, VolumePlan};
use crate::container::{ContainerInfo, MountKind};
use crate::layout::VOLUMES_DIR;

fn is_socket(path: &str) -> bool {
    path.ends_with(".sock")
}

/// The worker's mounts: every mount of the plan read-only at its snapshot path,
/// plus the sidecar's own mounts (repository, cache, `/databases`) at the same
/// places, sockets left out. Pure.
pub fn worker_mounts(plan: &Plan, sidecar: &ContainerInfo, with_volumes: bool) -> Vec<EngineMount> {
    let volumes: &[VolumePlan] = if with_volumes { &plan.volumes } else { &[] };
    mounts_for(volumes, sidecar, true)
}

/// The worker's mounts for `volumes` (read-only for a backup, read-write for a
/// restore) plus the sidecar's own. Pure.
pub fn mounts_for(
    volumes: &[VolumePlan],
    sidecar: &ContainerInfo,
    read_only: bool,
) -> Vec<EngineMount> {
    let mut mounts = Vec::new();
    {
        for v in volumes {
            mounts.push(EngineMount {
                target: Some(v.snapshot_path.clone()),
                source: Some(v.source.clone()),
                typ: Some(match v.kind {
                    MountKind::Bind => MountType::BIND,
                    _ => MountType::VOLUME,
                }),
                read_only: Some(read_only),
                ..Default::default()
            });
        }
    }
    for m in &sidecar.mounts {
        let under_volumes =
            m.destination == VOLUMES_DIR || m.destination.starts_with(&format!("{VOLUMES_DIR}/"));
        if m.kind == MountKind::Other
            || is_socket(&m.source)
            || is_socket(&m.destination)
            || under_volumes
        {
            continue;
        }
        let (typ, source) = match (m.kind, &m.name) {
            (MountKind::Volume, Some(name)) => (MountType::VOLUME, name.clone()),
            _ => (MountType::BIND, m.source.clone()),
        };
        mounts.push(EngineMount {
            target: Some(m.destination.clone()),
            source: Some(source),
            typ: Some(typ),
            read_only: Some(!m.rw),
            ..Default::default()
        });
    }
    mounts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::from_inspect_json;
    use crate::plan::{PlanOptions, build};

    #[test]
    fn worker_gets_plan_mounts_read_only_and_sidecar_mounts_without_the_socket() {
        let cs =
            from_inspect_json(include_str!("../../tests/fixtures/stack-inspect.json")).unwrap();
        let sidecar = cs.iter().find(|c| c.service == "backup").unwrap();
        let plan = build(
            &PlanOptions {
                project: "stackshot-e2e".into(),
                host: "h".into(),
                atomic: true,
                include_all_projects: false,
                exclude_bind_mounts: false,
                self_id: Some(sidecar.id.clone()),
                full_window: None,
                append_only: false,
                copy: None,
                freeze: false,
            },
            &cs,
        );
        let mounts = worker_mounts(&plan, sidecar, true);
        let find = |t: &str| {
            mounts
                .iter()
                .find(|m| m.target.as_deref() == Some(t))
                .unwrap_or_else(|| panic!("{t} missing: {mounts:?}"))
        };
        let data = find("/volumes/app/data");
        assert_eq!(data.source.as_deref(), Some("stackshot-e2e_app-data"));
        assert_eq!(data.typ, Some(MountType::VOLUME));
        assert_eq!(data.read_only, Some(true));
        assert_eq!(find("/volumes/app/uploads").typ, Some(MountType::BIND));
        let repo = find("/repository");
        assert_eq!(repo.read_only, Some(false));
        assert!(
            !mounts
                .iter()
                .any(|m| m.target.as_deref() == Some("/var/run/docker.sock"))
        );
        assert_eq!(
            worker_mounts(&plan, sidecar, false)
                .iter()
                .filter(|m| m.target.as_deref().unwrap().starts_with("/volumes"))
                .count(),
            0
        );
    }
}
