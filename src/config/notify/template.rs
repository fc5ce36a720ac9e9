//! `NOTIFY_TEMPLATE` (or `NOTIFY_TEMPLATE_FILE`): the title and body of the
//! notifications, written by the user as a MiniJinja (Jinja2) template over
//! the run report. Pure: it is checked when the configuration is read (it
//! parses, and names only the report's fields), and rendered from the
//! report's JSON when a run is told.
//!
//! The rendered text's first line that is not blank is the title; what
//! follows it, blank lines at its start left out, is the body.

use std::collections::BTreeSet;
use std::fmt;

use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior};

/// The names a template can use: the fields of the run report as the webhook
/// receives it (`docs/notifications.md` lists them), with the default message
/// as `title` and `text`.
pub const FIELDS: &[&str] = &[
    "run_id",
    "project",
    "started_at",
    "finished_at",
    "result",
    "reason",
    "phases",
    "window",
    "dumps",
    "snapshots",
    "recovered",
    "repository_initialised",
    "peak_rss_bytes",
    "window_mode",
    "notes",
    "retention",
    "copy",
    "notify_failures",
    "plan_refused",
    "title",
    "text",
];

/// The most work one rendering may do (MiniJinja's fuel, about one unit per
/// instruction): a loop that would not end stops there, and the default
/// message goes out instead.
const FUEL: u64 = 100_000;

/// A notification template that parsed and names only the report's fields.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
}

/// A title and a body, as a template rendered them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The rendered text's first line that is not blank.
    pub title: String,
    /// The lines after it (the title again when there are none).
    pub body: String,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // A field the report leaves out (no window, no retention) renders as
    // nothing, and so does any attribute of it.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(FUEL));
    env
}

/// MiniJinja's error as one line.
fn one_line(e: &minijinja::Error) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl Template {
    /// Checks `source`: it must parse, and every name it reads must be one of
    /// [`FIELDS`] (a misspelt field would otherwise render as nothing). The
    /// error is one line.
    pub fn parse(source: &str) -> Result<Template, String> {
        let env = environment();
        let template = env.template_from_str(source).map_err(|e| one_line(&e))?;
        // The names it reads that it does not set itself, less MiniJinja's
        // own functions (`range`, `dict`, `namespace`).
        let globals: BTreeSet<&str> = env.globals().map(|(name, _)| name).collect();
        let unknown: BTreeSet<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|name| !FIELDS.contains(&name.as_str()) && !globals.contains(name.as_str()))
            .collect();
        if !unknown.is_empty() {
            let names: Vec<String> = unknown.into_iter().collect();
            return Err(format!(
                "{} {} not a field of the run report",
                names.join(", "),
                if names.len() == 1 { "is" } else { "are" }
            ));
        }
        Ok(Template {
            source: source.to_string(),
        })
    }

    /// Renders the template over `context` (the report's JSON, with the
    /// default `title` and `text`). An error (a filter that fails, the fuel
    /// spent, nothing but white space) is one line; the caller sends the default
    /// message then.
    pub fn render(&self, context: &serde_json::Value) -> Result<Rendered, String> {
        let env = environment();
        let out = env
            .render_str(&self.source, Serde(context))
            .map_err(|e| one_line(&e))?;
        split(&out).ok_or_else(|| "the template rendered nothing".to_string())
    }
}

/// The first non-blank line as the title, the rest (leading blank lines
/// and trailing white space left out) as the body.
fn split(out: &str) -> Option<Rendered> {
    let mut lines = out.lines().skip_while(|l| l.trim().is_empty());
    let title = lines.next()?.trim().to_string();
    let body: Vec<&str> = lines.skip_while(|l| l.trim().is_empty()).collect();
    let body = body.join("\n").trim_end().to_string();
    let body = if body.is_empty() { title.clone() } else { body };
    Some(Rendered { title, body })
}

/// Only the size: a template is the user's text, not a secret, but it is long.
impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({} bytes)", self.source.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> serde_json::Value {
        json!({
            "project": "shop",
            "result": "failed",
            "reason": "disk full",
            "window": null,
            "dumps": [{"file": "postgres/appdb.sql", "bytes": 1200}],
            "title": "stackshot: shop backup FAILED",
            "text": "The backup of shop FAILED",
        })
    }

    #[test]
    fn the_first_line_is_the_title_and_the_rest_the_body() {
        let t = Template::parse(
            "[{{ project }}] {{ result | upper }}\n\n{% if reason %}Why: {{ reason }}\n{% endif %}{% for d in dumps %}- {{ d.file }}\n{% endfor %}",
        )
        .unwrap();
        let r = t.render(&report()).unwrap();
        assert_eq!(r.title, "[shop] FAILED");
        assert_eq!(r.body, "Why: disk full\n- postgres/appdb.sql");
    }

    /// The example in docs/notifications.md parses and renders, with a
    /// window and without one.
    #[test]
    fn the_documented_example_renders() {
        let doc = include_str!("../../../docs/notifications.md");
        let start = doc.find("NOTIFY_TEMPLATE: |\n").expect("the example") + 19;
        let source: String = doc[start..]
            .lines()
            .take_while(|l| l.starts_with("        "))
            .map(|l| format!("{}\n", &l[8..]))
            .collect();
        let t = Template::parse(&source).unwrap();
        let r = t.render(&report()).unwrap();
        assert_eq!(r.title, "shop: backup FAILED");
        assert_eq!(
            r.body,
            "Why: disk full\nStopped for 0 s; 1 dump(s).\nThe backup of shop FAILED"
        );
        let mut ok = report();
        ok["result"] = "success".into();
        ok["reason"] = serde_json::Value::Null;
        ok["window"] = json!({"seconds": 1.234, "stopped": ["app"]});
        let r = t.render(&ok).unwrap();
        assert_eq!(r.title, "shop: backup SUCCESS");
        assert!(
            r.body.starts_with("Stopped for 1.2 s; 1 dump(s)."),
            "{}",
            r.body
        );
    }

    #[test]
    fn a_title_alone_is_the_body_too() {
        let r = Template::parse("{{ title }}")
            .unwrap()
            .render(&report())
            .unwrap();
        assert_eq!(r.title, "stackshot: shop backup FAILED");
        assert_eq!(r.body, r.title);
    }

    #[test]
    fn a_missing_field_and_its_attributes_render_as_nothing() {
        let t = Template::parse("{{ project }}: window {{ window.seconds }}s").unwrap();
        assert_eq!(t.render(&report()).unwrap().title, "shop: window s");
    }

    #[test]
    fn a_misspelt_field_is_refused_by_name() {
        let e = Template::parse("{{ projct }} {{ reson }} {{ result }}").unwrap_err();
        assert_eq!(e, "projct, reson are not a field of the run report");
        // Names a template sets itself are not fields.
        Template::parse("{% set n = dumps | length %}{{ n }} dumps\n{% for d in dumps %}{{ d.file }}{% endfor %}")
            .unwrap();
    }

    #[test]
    fn a_syntax_error_is_one_line() {
        let e = Template::parse("{{ project ").unwrap_err();
        assert!(e.contains("syntax error"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn an_empty_title_or_a_runaway_loop_is_an_error_not_a_message() {
        let empty = Template::parse("{% if false %}x{% endif %}\n \n").unwrap();
        assert_eq!(
            empty.render(&report()).unwrap_err(),
            "the template rendered nothing"
        );
        let endless = Template::parse(
            "{% for i in range(1000) %}{% for j in range(1000) %}.{% endfor %}{% endfor %}",
        )
        .unwrap();
        let e = endless.render(&report()).unwrap_err();
        assert!(e.contains("fuel"), "{e}");
    }
}
