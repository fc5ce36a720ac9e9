//! What a plan amounts to ([`PlanSummary`]: the daemon's gauges and `stackshot
//! status`) and what changed between two plans ([`changes`]: one short line
//! per change, for the daemon's log). Pure: no engine.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{ExcludeReason, Plan};

/// A plan in short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    /// No errors: a backup may run from it.
    pub ok: bool,
    /// The errors that stop a backup.
    pub errors: Vec<String>,
    /// Services stopped during the backup, in stop order.
    pub stop: Vec<String>,
    /// Database services dumped (`service (engine)`).
    pub dumps: Vec<String>,
    /// How many mounts the plan backs up.
    pub mounts: usize,
    /// Services in scope that nothing backs up: no stackshot label at all.
    pub unlabelled: Vec<String>,
}

impl Plan {
    /// Containers in scope with no stackshot label: excluded whole for
    /// [`ExcludeReason::NoLabel`].
    pub fn unlabelled(&self) -> impl Iterator<Item = &super::Exclusion> {
        self.excluded
            .iter()
            .filter(|e| e.mount.is_none() && e.reason == ExcludeReason::NoLabel)
    }
}

/// Services with no stackshot label.
fn unlabelled(plan: &Plan) -> BTreeSet<String> {
    plan.unlabelled()
        .map(|e| e.container.service.clone())
        .collect()
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    v.retain(|s| seen.insert(s.clone()));
    v
}

impl PlanSummary {
    /// The summary of `plan`.
    pub fn of(plan: &Plan) -> PlanSummary {
        PlanSummary {
            ok: plan.is_ok(),
            errors: plan.errors.clone(),
            stop: dedup(
                plan.stop
                    .iter()
                    .map(|s| s.container.service.clone())
                    .collect(),
            ),
            dumps: dedup(
                plan.dumps
                    .iter()
                    .map(|d| format!("{} ({})", d.container.service, d.engine.as_str()))
                    .collect(),
            ),
            mounts: plan.volumes.len(),
            unlabelled: unlabelled(plan).into_iter().collect(),
        }
    }

    /// One line: `ok: stops app, sidekick; dumps postgres (postgres); 4 mounts; unlabelled: bystander`.
    pub fn line(&self) -> String {
        let list = |v: &[String]| {
            if v.is_empty() {
                "nothing".to_string()
            } else {
                v.join(", ")
            }
        };
        let mut s = if self.ok {
            "ok".to_string()
        } else {
            format!("{} error(s), backups refused", self.errors.len())
        };
        s.push_str(&format!(
            ": stops {}; dumps {}; {} mount(s)",
            list(&self.stop),
            list(&self.dumps),
            self.mounts
        ));
        if !self.unlabelled.is_empty() {
            s.push_str(&format!("; unlabelled: {}", self.unlabelled.join(", ")));
        }
        s
    }
}

/// What one service amounts to in a plan.
#[derive(Debug, Default, PartialEq, Eq)]
struct Role {
    stopped: bool,
    dumped: Option<String>,
    mounts: BTreeSet<String>,
    unlabelled: bool,
}

fn roles(plan: &Plan) -> BTreeMap<String, Role> {
    let mut m: BTreeMap<String, Role> = BTreeMap::new();
    for s in &plan.stop {
        m.entry(s.container.service.clone()).or_default().stopped = true;
    }
    for d in &plan.dumps {
        m.entry(d.container.service.clone()).or_default().dumped =
            Some(d.engine.as_str().to_string());
    }
    for v in &plan.volumes {
        m.entry(v.container.service.clone())
            .or_default()
            .mounts
            .insert(v.destination.clone());
    }
    for e in &plan.excluded {
        m.entry(e.container.service.clone()).or_default();
    }
    for e in plan.unlabelled() {
        m.entry(e.container.service.clone()).or_default().unlabelled = true;
    }
    m
}

fn describe(r: &Role) -> String {
    if r.unlabelled {
        return "no stackshot label, not backed up".into();
    }
    let mut parts = vec![];
    if r.stopped {
        parts.push("stopped during backup".to_string());
    }
    if let Some(engine) = &r.dumped {
        parts.push(format!("dumped ({engine})"));
    }
    if !r.mounts.is_empty() {
        parts.push(format!(
            "backs up {}",
            r.mounts.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if parts.is_empty() {
        "labelled, nothing backed up".into()
    } else {
        parts.join(", ")
    }
}

/// The changes from `old` to `new`, one short line each: services that came
/// or went, a service now (or no longer) stopped, dumped or backing up a
/// mount, and errors that appeared (`plan error: …`) or went (`fixed: …`).
/// Empty when nothing that matters changed (a container's running state or
/// id does not count).
pub fn changes(old: &Plan, new: &Plan) -> Vec<String> {
    let (a, b) = (roles(old), roles(new));
    let mut out = vec![];
    for (svc, r) in &b {
        let Some(before) = a.get(svc) else {
            out.push(format!("new service {svc}: {}", describe(r)));
            continue;
        };
        if before == r {
            continue;
        }
        if r.unlabelled != before.unlabelled {
            out.push(format!("{svc}: {}", describe(r)));
            continue;
        }
        if r.stopped != before.stopped {
            out.push(format!(
                "{svc}: {} stopped during backup",
                if r.stopped { "now" } else { "no longer" }
            ));
        }
        if r.dumped != before.dumped {
            out.push(match &r.dumped {
                Some(engine) => format!("{svc}: now dumped ({engine})"),
                None => format!("{svc}: no longer dumped"),
            });
        }
        for m in r.mounts.difference(&before.mounts) {
            out.push(format!("{svc}: now backs up {m}"));
        }
        for m in before.mounts.difference(&r.mounts) {
            out.push(format!("{svc}: no longer backs up {m}"));
        }
    }
    for svc in a.keys().filter(|s| !b.contains_key(*s)) {
        out.push(format!("service {svc}: gone"));
    }
    let (ea, eb): (BTreeSet<&String>, BTreeSet<&String>) =
        (old.errors.iter().collect(), new.errors.iter().collect());
    out.extend(eb.difference(&ea).map(|e| format!("plan error: {e}")));
    out.extend(ea.difference(&eb).map(|e| format!("fixed: {e}")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::ContainerInfo;
    use crate::plan::build;
    use crate::plan::tests::{fixture, opts, svc};

    fn plan(cs: &[ContainerInfo]) -> Plan {
        build(&opts(cs), cs)
    }

    #[test]
    fn summary_of_the_fixture_stack() {
        let s = PlanSummary::of(&plan(&fixture()));
        assert!(s.ok, "{s:?}");
        assert_eq!(s.stop, ["sidekick", "app"]);
        assert_eq!(s.dumps, ["mariadb (mariadb)", "postgres (postgres)"]);
        assert_eq!(s.unlabelled, ["bystander"]);
        assert!(s.mounts >= 3, "{s:?}");
        assert!(
            s.line().starts_with("ok: stops sidekick, app; dumps "),
            "{}",
            s.line()
        );
    }

    #[test]
    fn the_same_containers_recreated_change_nothing() {
        let cs = fixture();
        let mut again = fixture();
        for c in &mut again {
            c.id = format!("{}-recreated", c.id);
            c.running = !c.running;
        }
        assert_eq!(changes(&plan(&cs), &plan(&again)), Vec::<String>::new());
    }

    #[test]
    fn a_label_added_a_service_added_and_one_gone() {
        let cs = fixture();
        let mut after = fixture();
        svc(&mut after, "bystander")
            .labels
            .insert("stackshot.stop-during-backup".into(), "true".into());
        let mut redis = svc(&mut after, "legacy").clone();
        redis.service = "redis".into();
        redis.name = "stackshot-e2e_redis_1".into();
        redis.id = "redis-id".into();
        redis.labels.retain(|k, _| !k.starts_with("stack-back"));
        redis.mounts.clear();
        after.push(redis);
        after.retain(|c| c.service != "sidekick");
        let got = changes(&plan(&cs), &plan(&after));
        assert_eq!(
            got,
            [
                "bystander: stopped during backup",
                "new service redis: no stackshot label, not backed up",
                "service sidekick: gone",
            ],
        );
    }

    #[test]
    fn a_mistyped_label_is_an_error_and_its_fix_says_so() {
        let cs = fixture();
        let mut typo = fixture();
        let app = svc(&mut typo, "app");
        app.labels.remove("stackshot.stop-during-backup");
        app.labels
            .insert("stackshot.stop-during-backups".into(), "true".into());
        let (good, bad) = (plan(&cs), plan(&typo));
        let got = changes(&good, &bad);
        assert_eq!(got[0], "app: no longer stopped during backup", "{got:?}");
        assert!(
            got[1].starts_with("plan error: service app (")
                && got[1].contains("unknown label stackshot.stop-during-backups;"),
            "{got:?}"
        );
        assert!(!PlanSummary::of(&bad).ok);
        let back = changes(&bad, &good);
        assert_eq!(back[0], "app: now stopped during backup", "{back:?}");
        assert!(back[1].starts_with("fixed: service app ("), "{back:?}");
    }

    #[test]
    fn mounts_and_dumps_that_come_and_go() {
        let cs = fixture();
        let mut after = fixture();
        svc(&mut after, "app").labels.insert(
            "stackshot.volumes.exclude".into(),
            "/data-cache,/uploads".into(),
        );
        svc(&mut after, "postgres")
            .labels
            .remove("stackshot.postgres");
        let got = changes(&plan(&cs), &plan(&after));
        assert!(
            got.contains(&"app: no longer backs up /uploads".to_string()),
            "{got:?}"
        );
        assert!(
            got.contains(&"postgres: no longer dumped".to_string()),
            "{got:?}"
        );
        // Its data directory was left out for the dump; now its files are the copy.
        assert!(
            got.iter()
                .any(|l| l.starts_with("postgres: now backs up /var/lib/postgresql")),
            "{got:?}"
        );
    }
}
