//! `docker inspect` JSON (an array of containers, as the engine answers),
//! then the plan over those containers and its table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackshot::plan::{self, PlanOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(containers) = stackshot::container::from_inspect_json(text) else {
        return;
    };
    let project = containers
        .first()
        .map(|c| c.project.clone())
        .unwrap_or_default();
    for atomic in [true, false] {
        let opts = PlanOptions {
            project: project.clone(),
            host: "fuzz".into(),
            atomic,
            include_all_projects: !atomic,
            exclude_bind_mounts: false,
            self_id: None,
            full_window: None,
            append_only: !atomic,
            freeze: atomic,
            copy: (!atomic).then(|| stackshot::config::copy::CopyShown {
                repository: "s3:http://s3:8333/offsite".into(),
                when: "after each successful run".into(),
                retention: "--keep-last 3".into(),
            }),
        };
        let p = plan::build(&opts, &containers);
        for e in &p.errors {
            assert!(
                !e.contains('\n'),
                "a plan error of more than one line: {e:?}"
            );
        }
        let _ = plan::render_table(&p);
    }
});
