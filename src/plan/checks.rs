//! The checks on each container in scope before anything is planned for it:
//! names that become paths, the globs of its labels, its labels' errors and
//! the predecessor labels read or ignored.

use super::{Plan, PlanOptions, names};
use crate::container::ContainerInfo;
use crate::labels::BackupLabels;

/// False when one of `c`'s names cannot become a path: its problems are the
/// plan's errors, and nothing is planned for `c`.
pub(super) fn container_names(
    c: &ContainerInfo,
    opts: &PlanOptions,
    errors: &mut Vec<String>,
) -> bool {
    let problems = names::container_problems(c, opts.include_all_projects);
    if problems.is_empty() {
        return true;
    }
    errors.extend(problems);
    false
}

/// The checks on `c`'s labels: a glob that cannot be used, a label error, and
/// `stackshot.volumes.data-dir` on a service that is not a database are
/// errors; a predecessor label read or ignored is a warning.
pub(super) fn labels(c: &ContainerInfo, who: &str, labels: &BackupLabels, plan: &mut Plan) {
    for (label, globs) in [
        ("stackshot.volumes.include", &labels.include),
        ("stackshot.volumes.exclude", &labels.exclude),
    ] {
        for g in globs {
            if let Some(p) = names::glob_problem(g) {
                plan.errors.push(format!(
                    "{who} ({}): label {label} glob {g:?} cannot be used: {p}; accepted: comma-separated globs such as /data, /var/www/*, uploads-*",
                    c.name
                ));
            }
        }
    }
    plan.errors.extend(
        labels
            .errors
            .iter()
            .map(|e| format!("{who} ({}): {e}", c.name)),
    );
    for l in &labels.legacy {
        plan.warnings.push(format!(
            "{who}: read predecessor label {l}; it works, and the stackshot.* form is preferred"
        ));
    }
    for l in &labels.ignored {
        plan.warnings
            .push(format!("{who}: ignored predecessor label {l}"));
    }
    if labels.engine.is_none() && labels.data_dir {
        plan.errors.push(format!(
            "{who}: label stackshot.volumes.data-dir=true applies to a database service (stackshot.postgres, .mariadb, .mysql or .redis); remove it"
        ));
    }
}
