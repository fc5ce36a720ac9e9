//! What restic printed, made fit for a log, a report or an error: the
//! values of secrets hidden ([`redact`]), the last lines of stderr on one
//! line without Go's stack traces and retries ([`without_noise`]), and a
//! failed command described in one line ([`Restic::failure_message`]).

use crate::config::mask_repository;

use super::Restic;
use super::json::{BackupEvent, parse_backup_line};

/// How many lines of restic's stderr an error message keeps.
const STDERR_TAIL: usize = 10;

impl Restic {
    /// One line describing a failed restic command: `restic SUBCOMMAND failed
    /// for repository R (exit code N: meaning): last stderr lines`. For callers
    /// that run [`Restic::command`] themselves, such as the backup.
    pub fn failure_message(&self, subcommand: &str, code: Option<i32>, stderr: &str) -> String {
        let exit = match code {
            Some(code) => format!("exit code {code}{}", exit_meaning(code)),
            None => "killed by a signal".to_string(),
        };
        format!(
            "restic {subcommand} failed for repository {} ({exit}): {}",
            self.repository(),
            self.stderr_tail(stderr)
        )
    }

    /// `text` with the repository masked and the values of secret variables
    /// (passwords, keys, tokens) replaced by `<hidden>` ([`redact`]).
    pub fn redact(&self, text: &str) -> String {
        let mut out = redact(text, &self.settings.env);
        let repository = self.settings.repository.expose();
        if !repository.is_empty() {
            out = out.replace(repository, &self.repository());
        }
        out
    }

    /// The last lines of restic's stderr on one line, redacted; JSON messages
    /// (0.18+ `exit_error`, backup errors) reduced to their text.
    pub(super) fn stderr_tail(&self, stderr: &str) -> String {
        let lines: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let lines: Vec<String> = without_noise(&lines)
            .into_iter()
            .map(|line| match parse_backup_line(line) {
                Some(BackupEvent::ExitError(e)) => e.message.replace('\n', " "),
                Some(BackupEvent::Error(e)) => {
                    format!("{}: {}", e.item, e.message.as_deref().unwrap_or("error"))
                }
                _ => line.to_string(),
            })
            .collect();
        if lines.is_empty() {
            return "restic printed no error message".to_string();
        }
        let tail = lines[lines.len().saturating_sub(STDERR_TAIL)..].join(" | ");
        self.redact(&tail)
    }
}

/// What restic's documented exit codes mean (`""` for the generic ones).
fn exit_meaning(code: i32) -> &'static str {
    match code {
        3 => ": some source files could not be read",
        10 => ": the repository does not exist",
        11 => {
            ": the repository is locked; if no other restic runs, `restic unlock` removes stale locks"
        }
        12 => ": wrong password",
        130 => ": interrupted",
        _ => "",
    }
}

/// The one redaction of what restic (or its worker) printed, before it
/// reaches a log, a report or an error: the values of secret variables in
/// `env` (names with PASSWORD, SECRET, KEY, TOKEN, CREDENTIAL or AUTH, not
/// `…_FILE`, whose path helps) become `<hidden>`, and `RESTIC_REPOSITORY`'s
/// value is shown with its password masked. Pure.
pub fn redact(text: &str, env: &[(String, crate::env::Secret)]) -> String {
    let mut out = text.to_string();
    for (name, value) in env {
        let value = value.expose();
        if name == "RESTIC_REPOSITORY" {
            if !value.is_empty() {
                out = out.replace(value, &mask_repository(value));
            }
        } else if is_secret_name(name) && value.len() >= 4 {
            out = out.replace(value, "<hidden>");
        }
    }
    out
}

fn is_secret_name(name: &str) -> bool {
    const MARKERS: [&str; 6] = ["PASSWORD", "SECRET", "KEY", "TOKEN", "CREDENTIAL", "AUTH"];
    !name.ends_with("_FILE") && MARKERS.iter().any(|m| name.contains(m))
}

/// restic's stderr without what would push the error out of a short tail:
/// the Go stack trace some fatal errors carry (a function line, then its
/// `file.go:N` line), and the "retrying after" lines of a backend retried
/// before it gave up, when an error follows them.
/// A panic's trace is dropped too (`goroutine N [running]:`, its frames and
/// `created by` lines); its `panic: …` line stays.
pub fn without_noise<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    // `file.go:N`, alone or, in a panic's trace, tab-indented with `+0x…` after it.
    fn is_file_line(l: &str) -> bool {
        let t = l.trim_start();
        let indented = t.len() < l.len();
        let mut words = t.split_whitespace();
        let first = words.next().unwrap_or_default();
        let rest_ok = match words.next() {
            None => true,
            Some(w) => indented && w.starts_with("+0x") && words.next().is_none(),
        };
        rest_ok
            && first.rsplit_once(':').is_some_and(|(file, n)| {
                (file.ends_with(".go") || file.ends_with(".s"))
                    && !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
            })
    }
    let goroutine = |l: &str| {
        let t = l.trim();
        (t.starts_with("goroutine ") && t.ends_with(':')) || t.starts_with("created by ")
    };
    let retrying = |l: &str| l.contains(" returned error, retrying after ");
    let mut kept: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| {
            let frame = is_file_line(l)
                || goroutine(l)
                || (!l.starts_with(char::is_whitespace)
                    && lines.get(i + 1).is_some_and(|n| is_file_line(n)));
            !frame
        })
        .map(|(_, l)| *l)
        .collect();
    if kept.iter().any(|l| !retrying(l)) {
        kept.retain(|l| !retrying(l));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ResticSettings;
    use crate::env::Secret;
    use crate::restic::open::{OpenFailure, classify_open_failure};
    use crate::restic::{BackupExit, Version, classify_backup_exit, reach};

    const V018: Version = Version::new(0, 18, 0);

    fn restic(repository: &str) -> Restic {
        Restic::new(&ResticSettings {
            repository: Secret::new(repository),
            env: vec![
                (
                    "AWS_SECRET_ACCESS_KEY".into(),
                    Secret::new("aws-very-secret"),
                ),
                ("RESTIC_PASSWORD".into(), Secret::new("hunter22")),
                (
                    "RESTIC_PASSWORD_FILE".into(),
                    Secret::new("/run/secrets/pw"),
                ),
                ("RESTIC_REPOSITORY".into(), Secret::new(repository)),
            ],
            preflight_timeout: reach::PREFLIGHT_TIMEOUT,
        })
    }

    #[test]
    fn stderr_tail_of_018_exit_errors() {
        let r = restic("/tmp/stackshot-rec/repo-missing");
        let tail = |f| r.stderr_tail(f);
        assert_eq!(
            tail(include_str!(
                "../../tests/fixtures/restic/backup-wrong-password-0.18.stderr"
            )),
            "Fatal: wrong password or no key found"
        );
        // The exit_error's message spans three lines; the tail keeps it on one.
        assert_eq!(
            tail(include_str!(
                "../../tests/fixtures/restic/backup-missing-0.18.stderr"
            )),
            "Fatal: repository does not exist: unable to open config file: stat /tmp/stackshot-rec/repo-missing/config: no such file or directory Is there a repository at the following location? /tmp/stackshot-rec/repo-missing"
        );
        // A partial backup: the file errors, then the warning exit_error (code 3).
        let unreadable = tail(include_str!(
            "../../tests/fixtures/restic/backup-unreadable-0.18.stderr"
        ));
        assert!(
            unreadable.starts_with("data/locked: openfile for readdirnames failed")
                && unreadable.ends_with(
                    "permission denied | Warning: at least one source file could not be read"
                ),
            "{unreadable}"
        );
        assert_eq!(classify_backup_exit(3), BackupExit::Partial);
        // A repository under a regular file: 15 minutes of retries (dropped
        // from the tail), then exit 1.
        let not_a_dir =
            include_str!("../../tests/fixtures/restic/cat-config-not-a-directory-0.18.stderr");
        assert_eq!(
            classify_open_failure(V018, Some(1), not_a_dir),
            OpenFailure::Other
        );
        assert_eq!(
            tail(not_a_dir),
            "Stat(<config/>) failed: stat /tmp/stackshot-rec/file/repo/config: not a directory | Fatal: unable to open config file: stat /tmp/stackshot-rec/file/repo/config: not a directory | Is there a repository at the following location? | /tmp/stackshot-rec/file/repo"
        );
    }

    #[test]
    fn messages_hide_secrets() {
        let r = restic("rest:https://user:pa55word@backup.example:8000/shop");
        assert_eq!(
            r.repository(),
            "rest:https://user:***@backup.example:8000/shop"
        );
        let stderr = "noise\nFatal: rest:https://user:pa55word@backup.example:8000/shop: key aws-very-secret, password hunter22, file /run/secrets/pw\n";
        let msg = r.failure_message("snapshots", Some(1), stderr);
        assert_eq!(
            msg,
            "restic snapshots failed for repository rest:https://user:***@backup.example:8000/shop (exit code 1): noise | Fatal: rest:https://user:***@backup.example:8000/shop: key <hidden>, password <hidden>, file /run/secrets/pw"
        );
        let msg = r.failure_message("backup", None, "");
        assert!(
            msg.ends_with("(killed by a signal): restic printed no error message"),
            "{msg}"
        );
        assert!(
            r.failure_message("prune", Some(11), "x")
                .contains("exit code 11: the repository is locked")
        );
    }

    #[test]
    fn stderr_tail_keeps_last_lines_and_reads_json() {
        let r = restic("/repository");
        let many: String = (1..=15).map(|i| format!("line {i}\n")).collect();
        let tail = r.stderr_tail(&many);
        assert!(
            tail.starts_with("line 6 | ") && tail.ends_with("line 15"),
            "{tail}"
        );
        let json = r#"{"message_type":"exit_error","code":12,"message":"Fatal: wrong password or no key found"}"#;
        assert_eq!(r.stderr_tail(json), "Fatal: wrong password or no key found");
    }

    #[test]
    fn stderr_tail_drops_go_frames_and_retries() {
        let r = restic("/repository");
        let stderr = include_str!("../../tests/fixtures/restic/snapshots-read-only-0.14.stderr");
        let tail = r.stderr_tail(stderr);
        assert!(
            tail.starts_with("open /tmp/rorepo/locks/")
                && tail.ends_with(": read-only file system | unable to create lock in backend"),
            "{tail}"
        );
        // Retries alone are kept: they are the only clue.
        let only = "Save(<lock/1>) returned error, retrying after 1s: timeout";
        assert_eq!(r.stderr_tail(only), only);
    }

    #[test]
    fn a_panic_trace_is_dropped_and_its_panic_line_kept() {
        // The frames as restic 0.14 printed them in CI on a full repository
        // (the CI log kept the last eight worker lines); the lines before
        // them are of the same shape, not recorded.
        let lines = [
            "panic: send on closed channel",
            "",
            "goroutine 70 [running]:",
            "github.com/restic/restic/internal/archiver.(*TreeSaver).worker(0x0?, {0x104abd0, 0xc00015c7c0}, 0xc0001029c0)",
            "\tgithub.com/restic/restic/internal/archiver/tree_saver.go:136 +0x225",
            "github.com/restic/restic/internal/archiver.NewTreeSaver.func1()",
            "\tgithub.com/restic/restic/internal/archiver/tree_saver.go:32 +0x29",
            "golang.org/x/sync/errgroup.(*Group).Go.func1()",
            "\tgolang.org/x/sync/errgroup/errgroup.go:75 +0x64",
            "created by golang.org/x/sync/errgroup.(*Group).Go",
            "\tgolang.org/x/sync/errgroup/errgroup.go:72 +0xa5",
        ];
        assert_eq!(without_noise(&lines), ["panic: send on closed channel", ""]);
        // A message with a file name in it is no frame.
        let error =
            ["Fatal: unable to save snapshot: write /repository/data/x: no space left on device"];
        assert_eq!(without_noise(&error), error);
    }
}
