//! The stop window in a swarm: a task cannot be stopped (swarm would start
//! another in its place), so its *service* is what the window stops, by
//! scaling it to 0 and back ([`crate::engine::scale`]). Here, purely: which
//! task may be stopped that way, and the stop entries that name services
//! instead of their tasks.

use super::StopEntry;
use crate::container::{ContainerInfo, ServiceMode};
pub use crate::container::{SERVICE_TARGET, service_of, service_target};

/// The stop target of a container: its service's in a swarm, else its id.
pub fn target_of(c: &ContainerInfo) -> String {
    match &c.swarm_service {
        Some(svc) => service_target(svc),
        None => c.id.clone(),
    }
}

/// What the stop window would stop a swarm task for, which decides the
/// way out a refusal names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopFor {
    /// A backup (the `stackshot.stop-during-backup` label).
    Backup,
    /// A restore of the task's mounts in place.
    Restore,
}

/// Why the stop window cannot stop the swarm task `c`, naming the way out;
/// `None` when it can (not a swarm task, or a task of a replicated service
/// read on a manager node).
pub fn refusal(c: &ContainerInfo, stop_for: StopFor) -> Option<String> {
    let svc = c.swarm_service.as_deref()?;
    let (why, backup_way_out) = match c.swarm_mode {
        Some(ServiceMode::Replicated) => return None,
        Some(ServiceMode::Global) => (
            format!(
                "the swarm service {svc} is global (a task on every node), and only a replicated service can be scaled to 0 for the stop window"
            ),
            "make it replicated (deploy.mode: replicated) or remove the label",
        ),
        Some(ServiceMode::Job) => (
            format!("the swarm service {svc} is a job, which cannot be scaled to 0 and back"),
            "remove the label",
        ),
        None => (
            format!(
                "the swarm service {svc} is stopped by scaling it to 0, which only a manager node may do, and this is a worker node"
            ),
            "place the service on a manager (deploy.placement.constraints: [node.role == manager]) or remove the label",
        ),
    };
    let way_out = match stop_for {
        StopFor::Backup => backup_way_out,
        StopFor::Restore => {
            "restore into a new volume instead (--to-volume NAME), which stops nothing, and point the service at it"
        }
    };
    Some(format!("{why}; {way_out}"))
}

/// Stop entries with each swarm task replaced by its service: one entry per
/// service (at the earliest wave of its tasks), named by the service, with
/// the `after` lists naming services too. Entries of plain containers are
/// left as they are. Pure.
pub fn as_services(scope: &[&ContainerInfo], entries: Vec<StopEntry>) -> Vec<StopEntry> {
    let target = |id: &str| {
        scope
            .iter()
            .find(|c| c.id == id)
            .map(|c| target_of(c))
            .unwrap_or_else(|| id.to_string())
    };
    let mut out: Vec<StopEntry> = Vec::new();
    for mut e in entries {
        let Some(svc) = scope
            .iter()
            .find(|c| c.id == e.container.id)
            .and_then(|c| c.swarm_service.clone())
        else {
            out.push(e);
            continue;
        };
        let id = service_target(&svc);
        let mut after: Vec<String> = e.after.iter().map(|a| target(a)).collect();
        after.retain(|a| *a != id);
        if let Some(seen) = out.iter_mut().find(|o| o.container.id == id) {
            seen.wave = seen.wave.min(e.wave);
            seen.after.extend(after);
            seen.after.sort();
            seen.after.dedup();
            seen.running |= e.running;
            continue;
        }
        after.sort();
        after.dedup();
        e.container.id = id;
        e.container.container = svc;
        e.after = after;
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::from_inspect_json;
    use crate::plan::ContainerRef;

    fn task(id: &str, service: &str) -> ContainerInfo {
        let mut c = from_inspect_json(include_str!("../../tests/fixtures/swarm-inspect.json"))
            .unwrap()
            .remove(0);
        c.id = id.into();
        c.name = format!("{service}.1.{id}");
        c.service = service.trim_start_matches("swt_").into();
        c.swarm_service = Some(service.into());
        c.swarm_mode = Some(ServiceMode::Replicated);
        c
    }

    fn entry(c: &ContainerInfo, wave: usize, after: &[&str]) -> StopEntry {
        StopEntry {
            container: ContainerRef::of(c),
            wave,
            after: after.iter().map(|s| s.to_string()).collect(),
            running: true,
            pre_stop: None,
            freeze: false,
        }
    }

    #[test]
    fn tasks_become_their_services_once() {
        let a1 = task("a1", "swt_app");
        let a2 = task("a2", "swt_app");
        let w = task("w1", "swt_worker");
        let mut plain = task("p1", "x");
        plain.swarm_service = None;
        let scope = vec![&a1, &a2, &w, &plain];
        let got = as_services(
            &scope,
            vec![
                entry(&w, 0, &["a1", "a2", "p1"]),
                entry(&a1, 1, &[]),
                entry(&a2, 1, &["a1"]),
                entry(&plain, 2, &[]),
            ],
        );
        let ids: Vec<(&str, &str, usize)> = got
            .iter()
            .map(|e| {
                (
                    e.container.id.as_str(),
                    e.container.container.as_str(),
                    e.wave,
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                ("swarm-service:swt_worker", "swt_worker", 0),
                ("swarm-service:swt_app", "swt_app", 1),
                ("p1", "x.1.p1", 2),
            ]
        );
        assert_eq!(got[0].after, ["p1", "swarm-service:swt_app"]);
        // A task depending on another task of its own service does not
        // make the service wait for itself.
        assert!(got[1].after.is_empty(), "{:?}", got[1].after);
        assert_eq!(service_of(&got[1].container.id), Some("swt_app"));
        assert_eq!(service_of("p1"), None);
    }

    #[test]
    fn only_a_replicated_service_read_on_a_manager_is_stopped() {
        let mut c = task("a1", "swt_app");
        assert_eq!(refusal(&c, StopFor::Backup), None);
        c.swarm_mode = Some(ServiceMode::Global);
        assert!(
            refusal(&c, StopFor::Backup)
                .unwrap()
                .starts_with("the swarm service swt_app is global (a task on every node)"),
            "{:?}",
            refusal(&c, StopFor::Backup)
        );
        c.swarm_mode = Some(ServiceMode::Job);
        assert!(refusal(&c, StopFor::Backup).unwrap().contains("is a job"));
        c.swarm_mode = None;
        assert!(refusal(&c, StopFor::Backup).unwrap().contains(
            "only a manager node may do, and this is a worker node; place the service on a manager"
        ));
        // A restore names its own way out: a new volume, nothing stopped.
        let restore = refusal(&c, StopFor::Restore).unwrap();
        assert!(
            restore.ends_with("this is a worker node; restore into a new volume instead (--to-volume NAME), which stops nothing, and point the service at it"),
            "{restore}"
        );
        c.swarm_service = None;
        assert_eq!(refusal(&c, StopFor::Backup), None);
    }
}
