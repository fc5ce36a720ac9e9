//! The plan's scope: the containers it is about, and how many containers each
//! service has among them.

use std::collections::BTreeMap;

use super::PlanOptions;
use crate::container::{self, ContainerInfo, ROLE_LABEL};

fn role(c: &ContainerInfo) -> Option<&str> {
    c.labels.get(ROLE_LABEL).map(String::as_str)
}

/// The containers of the plan, by project, service, number and name: our
/// project's (or every project's), never ourselves, our workers or one-off
/// containers. A service marked as one of stackshot's own containers is left
/// out with a warning.
pub(super) fn select<'a>(
    opts: &PlanOptions,
    containers: &'a [ContainerInfo],
    warnings: &mut Vec<String>,
) -> Vec<&'a ContainerInfo> {
    let mut scope: Vec<&ContainerInfo> = containers
        .iter()
        .filter(|c| !c.project.is_empty())
        .filter(|c| opts.include_all_projects || c.project == opts.project)
        .filter(|c| opts.self_id.as_deref() != Some(c.id.as_str()))
        .filter(|c| !c.oneoff)
        .collect();
    // stackshot's own containers carry no compose or swarm labels: a service
    // with their mark is left out as they are, but not silently. (Another
    // `stackshot.role` value stays in scope: its label is a plan error.)
    for c in scope.iter().filter(|c| container::is_own_role(role(c))) {
        warnings.push(format!(
            "container {:?} (service {}): label {ROLE_LABEL}={:?} marks the containers stackshot starts itself; \
             it is left out of the backup: remove the label from the service",
            c.name,
            c.service,
            role(c).unwrap_or_default()
        ));
    }
    scope.retain(|c| !container::is_own_role(role(c)));
    scope.sort_by(|a, b| {
        (&a.project, &a.service, a.number, &a.name)
            .cmp(&(&b.project, &b.service, b.number, &b.name))
    });
    scope
}

/// How many containers of each (project, service) are in `scope`.
pub(super) fn replicas<'a>(scope: &[&'a ContainerInfo]) -> BTreeMap<(&'a str, &'a str), usize> {
    scope.iter().fold(BTreeMap::new(), |mut m, c| {
        *m.entry((c.project.as_str(), c.service.as_str()))
            .or_default() += 1;
        m
    })
}
