//! What a notification says (pure): a title and a few lines a person reads
//! on a phone at 02:00, and the JSON a webhook receives.

use serde_json::Value;

pub use crate::config::notify::NotifyOn;
use crate::config::notify::Template;
use crate::report::{Outcome, RunReport};

impl NotifyOn {
    /// Whether a run ending in `result` is told.
    pub fn wants(self, result: Outcome) -> bool {
        self == NotifyOn::Always || result != Outcome::Success
    }

    /// Whether the run of `report` is told: as [`NotifyOn::wants`] says of
    /// its result, and always when its copy failed (a failure too, though
    /// not the run's).
    pub fn wants_report(self, report: &RunReport) -> bool {
        self.wants(report.result) || copy_failed(report)
    }
}

fn copy_failed(report: &RunReport) -> bool {
    report.copy.as_ref().is_some_and(|c| c.failed_anything())
}

fn word(result: Outcome) -> &'static str {
    match result {
        Outcome::Success => "succeeded",
        Outcome::Partial => "PARTIAL",
        Outcome::Failed => "FAILED",
    }
}

fn project(report: &RunReport) -> &str {
    if report.project.is_empty() {
        "(unknown project)"
    } else {
        &report.project
    }
}

/// Writes a byte count in decimal units for the message, such as `12.3 MB`.
fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

/// The title: `stackshot: shop backup FAILED`.
pub fn title(report: &RunReport) -> String {
    format!(
        "stackshot: {} backup {}{}",
        project(report),
        word(report.result),
        if copy_failed(report) {
            ", copy FAILED"
        } else {
            ""
        }
    )
}

/// The body: result, reason, stop window, dumps, and what to run next.
pub fn text(report: &RunReport) -> String {
    let mut lines = vec![format!(
        "The backup of {} {} (run {}, {:.1} s).",
        project(report),
        word(report.result),
        report.run_id,
        report.seconds()
    )];
    if let Some(reason) = &report.reason {
        lines.push(format!("Reason: {reason}"));
    }
    match &report.window {
        Some(w) => lines.push(format!(
            "Stop window: {:.1} s ({} container(s) stopped{}){}",
            w.seconds,
            w.stopped.len(),
            if w.frozen.is_empty() {
                String::new()
            } else {
                format!(", {} frozen", w.frozen.len())
            },
            if w.restart_failed.is_empty() {
                String::new()
            } else {
                format!("; NOT STARTED AGAIN: {}", w.restart_failed.join(", "))
            }
        )),
        None => lines.push("Stop window: not opened (nothing was stopped)".into()),
    }
    if !report.dumps.is_empty() {
        lines.push(format!(
            "Dumps: {}",
            report
                .dumps
                .iter()
                .map(|d| format!("{} {}", d.file, size(d.bytes)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(copy) = report.copy.as_ref().filter(|c| c.ran()) {
        // The report's line, capitalised as the message's other lines are.
        let line = copy.line();
        lines.push(format!("C{}", line.strip_prefix('c').unwrap_or(&line)));
    }
    lines.push(
        "Next: docker compose exec backup stackshot status (and `stackshot plan` when the plan is at fault)"
            .into(),
    );
    lines.join("\n")
}

/// What every receiver but the webhook sends: a title, the text, and how
/// urgent it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Told {
    /// The message's title, as the `title` function writes it.
    pub title: String,
    /// The message's body, as the `text` function writes it.
    pub text: String,
    /// Whether the run succeeded (ntfy tags the message with it).
    pub ok: bool,
    /// How the run ended (the Apprise API's `type`).
    pub result: Outcome,
    /// 3 for a success, 5 otherwise (ntfy's and Gotify's scales).
    pub priority: u8,
}

impl Told {
    /// The default message about `report`.
    pub fn of(report: &RunReport) -> Told {
        let ok = report.result == Outcome::Success;
        Told {
            title: title(report),
            text: text(report),
            ok,
            result: report.result,
            priority: if ok { 3 } else { 5 },
        }
    }

    /// The message about `report`: the default one, or what `template`
    /// (`NOTIFY_TEMPLATE`) makes of the report's JSON. A template that fails
    /// to render is logged, and the default message goes out: a run is never
    /// left untold for its template.
    pub fn from_template(report: &RunReport, template: Option<&Template>) -> Told {
        let told = Told::of(report);
        let Some(template) = template else {
            return told;
        };
        match template.render(&webhook_body(report, &told)) {
            Ok(r) => Told {
                title: r.title,
                text: r.body,
                ..told
            },
            Err(error) => {
                tracing::warn!(%error, "NOTIFY_TEMPLATE did not render; the default message is sent");
                told
            }
        }
    }

    /// A message for receivers' unit tests.
    #[cfg(test)]
    pub fn sample(ok: bool) -> Told {
        let mut r = RunReport::start();
        r.project = "shop".into();
        let result = if ok {
            Outcome::Success
        } else {
            Outcome::Failed
        };
        Told::of(&r.finish(result, (!ok).then(|| "disk full".into())))
    }
}

/// The run report as JSON, with the message's `title` and `text` (`told`)
/// added: what the webhook receives, and what a template reads (with the
/// default message's title and text).
pub fn webhook_body(report: &RunReport, told: &Told) -> Value {
    let mut v = serde_json::to_value(report).unwrap_or_else(|_| Value::Object(Default::default()));
    if let Some(o) = v.as_object_mut() {
        o.insert("title".into(), told.title.clone().into());
        o.insert("text".into(), told.text.clone().into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> RunReport {
        let mut r = RunReport::start();
        r.project = "shop".into();
        r.finish(
            Outcome::Failed,
            Some("service postgres: cannot log in".into()),
        )
    }

    #[test]
    fn says_project_result_reason_window_and_next_step() {
        let r = failed();
        assert_eq!(title(&r), "stackshot: shop backup FAILED");
        let t = text(&r);
        assert!(t.contains("The backup of shop FAILED"), "{t}");
        assert!(t.contains("Reason: service postgres: cannot log in"), "{t}");
        assert!(t.contains("Stop window: not opened"), "{t}");
        assert!(t.contains("stackshot status"), "{t}");
        let body = webhook_body(&r, &Told::of(&r));
        assert_eq!(body["result"], "failed");
        assert_eq!(body["reason"], "service postgres: cannot log in");
        assert_eq!(body["project"], "shop");
        assert_eq!(body["title"], "stackshot: shop backup FAILED");
    }

    /// The names `NOTIFY_TEMPLATE` may use are exactly the report's fields
    /// (with `title` and `text`): a field added to the report is not
    /// refused in a template.
    #[test]
    fn a_template_may_name_every_field_of_the_report_and_no_other() {
        let r = failed();
        let v = webhook_body(&r, &Told::of(&r));
        let keys: std::collections::BTreeSet<&str> =
            v.as_object().unwrap().keys().map(String::as_str).collect();
        let fields: std::collections::BTreeSet<&str> = crate::config::notify::TEMPLATE_FIELDS
            .iter()
            .copied()
            .collect();
        assert_eq!(keys, fields);
    }

    #[test]
    fn failure_only_by_default() {
        assert!(!NotifyOn::Failure.wants(Outcome::Success));
        assert!(NotifyOn::Failure.wants(Outcome::Partial));
        assert!(NotifyOn::Failure.wants(Outcome::Failed));
        assert!(NotifyOn::Always.wants(Outcome::Success));
    }

    #[test]
    fn a_failed_copy_is_told_even_after_a_good_run() {
        use crate::report::CopyReport;
        let mut r = RunReport::start();
        r.project = "shop".into();
        let mut r = r.finish(Outcome::Success, None);
        r.copy = Some(CopyReport::scheduled("/copy".into()));
        assert!(!NotifyOn::Failure.wants_report(&r));
        assert_eq!(title(&r), "stackshot: shop backup succeeded");
        assert!(!text(&r).contains("/copy"), "{}", text(&r));
        r.copy = Some(CopyReport::failed(
            "s3:http://s3:8333/offsite".into(),
            "cannot connect to s3:8333".into(),
            0.2,
        ));
        assert!(NotifyOn::Failure.wants_report(&r));
        assert_eq!(title(&r), "stackshot: shop backup succeeded, copy FAILED");
        let t = text(&r);
        assert!(
            t.contains("\nCopy to s3:http://s3:8333/offsite: FAILED: cannot connect to s3:8333\n"),
            "{t}"
        );
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(999), "999 B");
        assert_eq!(size(14_200_000), "14.2 MB");
        assert_eq!(size(2_500_000_000), "2.5 GB");
    }
}
