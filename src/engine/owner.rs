//! Who owns a drill's throwaway containers and volumes: the drill's own run
//! (so that it removes only its own), and the process behind it (so that the
//! leftovers of a drill that died are told apart from the throwaways of a
//! drill that runs at the same time). Recorded in labels; the decision is
//! pure ([`Owner::is_leftover`]).

/// The label naming the drill run a throwaway belongs to.
pub const RUN_LABEL: &str = "stackshot.drill-run";
/// The label naming the process that runs it: `<container>/<pid>/<start>`.
pub const OWNER_LABEL: &str = "stackshot.drill-owner";

/// A drill run and the process that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The container the drill runs in (the sidecar), or empty.
    pub container: String,
    /// Its process id there.
    pub pid: u32,
    /// The process's start time (clock ticks after boot, from
    /// `/proc/<pid>/stat`): a pid taken again by another process differs.
    pub started: u64,
    /// This run (a process may drill more than once).
    pub run: String,
}

/// What is known of a throwaway's owner when leftovers are looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Its process, in this container, runs (same pid, same start time).
    ProcessRuns,
    /// Its process, in this container, is gone.
    ProcessGone,
    /// It ran in another container, which runs: its process may too.
    OtherContainerRuns,
    /// It ran in another container, which is gone or stopped.
    OtherContainerGone,
}

impl Owner {
    /// This process, in `container`, for a new drill run.
    pub fn this_process(container: &str) -> Owner {
        let pid = std::process::id();
        let started = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| start_time(&s))
            .unwrap_or(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Owner {
            container: container.to_string(),
            pid,
            started,
            run: format!("{pid}-{started}-{nanos:08x}"),
        }
    }

    /// The owner label's value.
    pub fn label(&self) -> String {
        format!("{}/{}/{}", self.container, self.pid, self.started)
    }

    /// A short suffix for container names, unique per run.
    pub fn suffix(&self) -> String {
        let h = self.run.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        format!("{:08x}", h as u32)
    }

    /// Whether the throwaway labelled `run` and `owner` is a leftover of a
    /// drill that died: never one of this run, nor one whose owner may still
    /// run; always one without the labels (a drill from before them).
    /// `liveness` tells how its owner fares (asked only when it matters).
    pub fn is_leftover(
        &self,
        run: Option<&str>,
        owner: Option<&str>,
        liveness: impl FnOnce(&str, u32, u64) -> Liveness,
    ) -> bool {
        if run == Some(self.run.as_str()) {
            return false;
        }
        let Some((container, pid, started)) = owner.and_then(parse_label) else {
            return true;
        };
        matches!(
            liveness(container, pid, started),
            Liveness::ProcessGone | Liveness::OtherContainerGone
        )
    }
}

/// `<container>/<pid>/<start>` → its parts. Pure.
pub fn parse_label(label: &str) -> Option<(&str, u32, u64)> {
    let mut parts = label.rsplitn(3, '/');
    let started = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    Some((parts.next()?, pid, started))
}

/// A process's start time from its `/proc/<pid>/stat` line (field 22, after
/// the command name in parentheses, which may hold anything). Pure.
pub fn start_time(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid` of this container runs and started at `started`
/// (0: its start time was not known, any start time will do). Without a
/// readable `/proc` nothing can be told: it is taken to run.
pub fn process_runs(pid: u32, started: u64) -> bool {
    let stat = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| start_time(&s))
    };
    if stat("self").is_none() {
        return true;
    }
    stat(&pid.to_string()).is_some_and(|s| started == 0 || s == started)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Owner {
        Owner {
            container: "sidecar".into(),
            pid: 40,
            started: 1234,
            run: "40-1234-00000001".into(),
        }
    }

    #[test]
    fn only_throwaways_whose_owner_is_gone_are_leftovers() {
        let me = me();
        let never = |_: &str, _: u32, _: u64| -> Liveness { panic!("not asked") };
        assert!(!me.is_leftover(Some(&me.run), Some(&me.label()), never));
        assert!(me.is_leftover(None, None, never), "from before the labels");
        assert!(me.is_leftover(Some("x"), Some("garbage"), never));
        let other = Some("sidecar/41/99");
        for (l, leftover) in [
            (Liveness::ProcessRuns, false),
            (Liveness::ProcessGone, true),
            (Liveness::OtherContainerRuns, false),
            (Liveness::OtherContainerGone, true),
        ] {
            let asked = |c: &str, pid: u32, started: u64| {
                assert_eq!((c, pid, started), ("sidecar", 41, 99));
                l
            };
            assert_eq!(me.is_leftover(Some("41-99-0"), other, asked), leftover);
        }
    }

    #[test]
    fn labels_and_stat_lines_parse() {
        assert_eq!(parse_label(&me().label()), Some(("sidecar", 40, 1234)));
        assert_eq!(parse_label("/7/8"), Some(("", 7, 8)));
        assert_eq!(parse_label("a/b/c"), None);
        assert_eq!(parse_label("7/8"), None);
        let stat = "812 (stack shot) x) S 1 812 812 0 -1 4194560 1234 0 0 0 3 1 0 0 20 0 5 0 987654 12345678 900";
        assert_eq!(start_time(stat), Some(987654));
        assert_eq!(start_time("812 (x"), None);
        let here = Owner::this_process("c");
        assert!(here.started > 0, "this process's own stat line reads");
        assert!(process_runs(here.pid, here.started));
        assert!(
            !process_runs(here.pid, here.started + 1),
            "another start time: another process"
        );
        assert_ne!(
            here.suffix(),
            Owner {
                run: "other".into(),
                ..here.clone()
            }
            .suffix()
        );
    }
}
