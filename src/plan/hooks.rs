//! The plan's exec hooks, in the order they run: pre-backup (scope order),
//! pre-stop (stop order), post-backup (scope order).

use super::{ContainerRef, Hook, HookPhase, HookPlan, Plan, swarm};
use crate::container::ContainerInfo;
use crate::labels;

/// `command`, one of `h`'s, as a hook with `h`'s time limit.
fn hook(h: &labels::Hooks, command: Option<&str>) -> Option<Hook> {
    command.map(|command| Hook {
        command: command.to_string(),
        timeout_seconds: h.timeout.unwrap_or(labels::HOOK_TIMEOUT).as_secs(),
    })
}

/// The hooks of `hooked` (the containers with hooks, in scope order) in the
/// plan: each stopped container's pre-stop hook on its stop entry, a warning
/// for a pre-stop hook that never runs, and every hook in the order they run.
pub(super) fn plan_hooks(hooked: &[(&ContainerInfo, labels::Hooks)], plan: &mut Plan) {
    for entry in &mut plan.stop {
        if let Some((_, h)) = hooked
            .iter()
            .find(|(c, _)| swarm::target_of(c) == entry.container.id)
        {
            entry.pre_stop = hook(h, h.pre_stop.as_deref());
        }
    }
    let mut pre = vec![];
    let mut post = vec![];
    for (c, h) in hooked {
        let cref = ContainerRef::of(c);
        if h.pre_stop.is_some()
            && !plan
                .stop
                .iter()
                .any(|e| e.container.id == swarm::target_of(c))
        {
            plan.warnings.push(format!(
                "service {}: stackshot.exec.pre-stop is set but the container is not stopped during backups; it never runs",
                c.service
            ));
        }
        if let Some(hook) = hook(h, h.pre_backup.as_deref()) {
            pre.push(HookPlan {
                container: cref.clone(),
                phase: HookPhase::PreBackup,
                hook,
            });
        }
        if let Some(hook) = hook(h, h.post_backup.as_deref()) {
            post.push(HookPlan {
                container: cref,
                phase: HookPhase::PostBackup,
                hook,
            });
        }
    }
    let pre_stop = plan.stop.iter().filter_map(|e| {
        e.pre_stop.clone().map(|hook| HookPlan {
            container: e.container.clone(),
            phase: HookPhase::PreStop,
            hook,
        })
    });
    plan.hooks = pre
        .into_iter()
        .chain(pre_stop.collect::<Vec<_>>())
        .chain(post)
        .collect();
}
