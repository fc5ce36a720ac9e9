//! Freeze mode in the plan: which held containers are frozen, what overrides
//! `FREEZE_DURING_BACKUP`, databases never frozen, and what `plan` says.

use super::*;

fn frozen(plan: &Plan) -> Vec<(String, bool)> {
    plan.stop
        .iter()
        .map(|s| (s.container.service.clone(), s.freeze))
        .collect()
}

#[test]
fn a_freeze_label_holds_its_container_frozen_beside_the_stopped_ones() {
    let plan = labelled(&[("bystander", "stackshot.freeze-during-backup", "true")]);
    assert_eq!(
        frozen(&plan),
        [
            ("bystander".to_string(), true),
            ("sidekick".to_string(), false),
            ("app".to_string(), false),
        ]
    );
    let text = render::render_table(&plan);
    assert!(text.contains("running: frozen, not stopped"), "{text}");
    assert!(text.contains("crash-consistent"), "{text}");
}

#[test]
fn the_global_default_freezes_every_held_container_but_one_that_says_no() {
    let mut cs = fixture();
    svc(&mut cs, "sidekick")
        .labels
        .insert("stackshot.freeze-during-backup".into(), "false".into());
    let mut o = opts(&cs);
    o.freeze = true;
    let plan = build(&o, &cs);
    assert_eq!(
        frozen(&plan),
        [("sidekick".to_string(), false), ("app".to_string(), true)]
    );
    // Off by default: nothing frozen, and plan says nothing of freezing.
    let plain = build(&opts(&cs), &cs);
    assert!(plain.stop.iter().all(|s| !s.freeze));
    assert!(!render::render_table(&plain).contains("rozen"));
}

#[test]
fn a_database_is_never_frozen_it_must_answer_its_dump() {
    let plan = labelled(&[("postgres", "stackshot.freeze-during-backup", "true")]);
    assert!(
        plan.stop.iter().all(|s| s.container.service != "postgres"),
        "{:?}",
        plan.stop
    );
    assert!(
        plan.warnings.iter().any(|w| w
            == "service postgres: stackshot.freeze-during-backup ignored on a database container: it must answer the dump"),
        "{:?}",
        plan.warnings
    );
}
