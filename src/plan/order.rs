//! Stop order: dependents stop before what they depend on; containers with no
//! order between them share a wave and stop concurrently. Start order is the
//! reverse.

use std::collections::{BTreeMap, BTreeSet};

use super::{ContainerRef, Plan, StopEntry, swarm};
use crate::container::ContainerInfo;

/// Direct dependencies of each container (indexes into `scope`): compose
/// `depends_on` (by service, same project), `network_mode: container:`/`service:`
/// and legacy links (by id or name).
fn direct_deps(scope: &[&ContainerInfo]) -> Vec<BTreeSet<usize>> {
    scope
        .iter()
        .map(|c| {
            scope
                .iter()
                .enumerate()
                .filter(|(_, d)| d.id != c.id)
                .filter(|(_, d)| {
                    (d.project == c.project && c.depends_on.contains(&d.service))
                        || c.depends_on_containers.iter().any(|r| d.is(r))
                })
                .map(|(i, _)| i)
                .collect()
        })
        .collect()
}

fn transitive(deps: &[BTreeSet<usize>]) -> Vec<BTreeSet<usize>> {
    (0..deps.len())
        .map(|start| {
            let mut seen = BTreeSet::new();
            let mut todo: Vec<usize> = deps[start].iter().copied().collect();
            while let Some(n) = todo.pop() {
                if seen.insert(n) {
                    todo.extend(deps[n].iter().copied());
                }
            }
            seen
        })
        .collect()
}

/// Orders `stop` (a subset of `scope`) into waves. Returns the entries sorted by
/// wave, and the names of containers caught in a dependency cycle, if any.
pub(super) fn stop_waves(
    scope: &[&ContainerInfo],
    stop: &[&ContainerInfo],
) -> (Vec<StopEntry>, Option<Vec<String>>) {
    let index: BTreeMap<&str, usize> = scope
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let tdeps = transitive(&direct_deps(scope));
    let members: Vec<usize> = stop
        .iter()
        .filter_map(|c| index.get(c.id.as_str()).copied())
        .collect();
    let cyclic: Vec<String> = members
        .iter()
        .filter(|&&i| tdeps[i].contains(&i))
        .map(|&i| scope[i].name.clone())
        .collect();
    // x must stop before y when x depends (transitively) on y, unless they depend on each other.
    let before = |x: usize, y: usize| tdeps[x].contains(&y) && !tdeps[y].contains(&x);

    let mut wave: BTreeMap<usize, usize> = BTreeMap::new();
    // Longest chain of dependents above each member; members are few, so a
    // fixed-point loop is clear and fast enough.
    for &m in &members {
        wave.insert(m, 0);
    }
    for _ in 0..=members.len() {
        let mut changed = false;
        for &y in &members {
            let w = members
                .iter()
                .filter(|&&x| before(x, y))
                .map(|x| wave[x] + 1)
                .max()
                .unwrap_or(0);
            if wave[&y] != w {
                wave.insert(y, w);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut entries: Vec<StopEntry> = members
        .iter()
        .map(|&i| StopEntry {
            container: ContainerRef::of(scope[i]),
            wave: wave[&i],
            after: {
                let mut after: Vec<String> = members
                    .iter()
                    .filter(|&&y| before(i, y))
                    .map(|&y| scope[y].id.clone())
                    .collect();
                after.sort();
                after
            },
            running: scope[i].running,
            pre_stop: None,
            freeze: false,
        })
        .collect();
    entries.sort_by(|a, b| {
        (a.wave, &a.container.service, &a.container.container).cmp(&(
            b.wave,
            &b.container.service,
            &b.container.container,
        ))
    });
    // In a swarm the window stops services, not their tasks.
    let entries = super::swarm::as_services(scope, entries);
    (entries, (!cyclic.is_empty()).then_some(cyclic))
}

/// The plan's stop list: `stop_set` (in scope order) in waves. A swarm task
/// that cannot be stopped is an error and left out; a dependency cycle is a
/// warning.
pub(super) fn stop_list(
    scope: &[&ContainerInfo],
    mut stop_set: Vec<&ContainerInfo>,
    plan: &mut Plan,
) {
    // A swarm task is stopped by scaling its service to 0: a replicated
    // service, from a manager node.
    stop_set.retain(|c| match swarm::refusal(c, swarm::StopFor::Backup) {
        None => true,
        Some(why) => {
            plan.errors.push(format!(
                "{}: stackshot.stop-during-backup: {why}",
                c.service
            ));
            false
        }
    });
    let (stop, cycle) = stop_waves(scope, &stop_set);
    if let Some(cycle) = cycle {
        plan.warnings.push(format!(
            "dependency cycle among {cycle:?}; those containers are stopped together"
        ));
    }
    plan.stop = stop;
}
