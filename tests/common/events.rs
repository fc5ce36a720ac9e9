//! The engine's events, recorded live: a `docker events` stream started before
//! the action a test makes and stopped after it.
//!
//! Asking the engine afterwards (`docker events --since/--until`) replays only
//! its most recent events (256 on Docker 20–28), so on a busy engine a replay
//! can silently miss the very `die`/`stop` a test looks for, and a check that
//! something was *not* touched passes on an empty list. A live stream misses
//! nothing, and two marker events the watch causes itself (a volume created
//! and removed at the start and at the end) prove that the stream was live
//! for the whole action: [`EventWatch::finish`] fails when it did not see both.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{docker, output};

/// One event from the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `container`, `volume`, `network`, …
    pub kind: String,
    /// `start`, `die`, `stop`, `kill`, `create`, …
    pub action: String,
    /// The actor: a container id, a volume name, …
    pub id: String,
    /// The actor's `name` attribute (a container's name), if any.
    pub name: String,
    /// When, in nanoseconds since the epoch (the engine's clock).
    pub time_nano: i64,
    /// The event as the engine sent it (JSON): every attribute, for checks
    /// that nothing in it carries a secret.
    pub raw: String,
}

impl Event {
    fn parse(line: &str) -> Option<Event> {
        let v: Value = serde_json::from_str(line).ok()?;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        // Podman (4.3) sends a volume's events with an empty ID and the
        // volume's name in the attributes only.
        let id = match text(&v["Actor"]["ID"]) {
            id if id.is_empty() => text(&v["Actor"]["Attributes"]["name"]),
            id => id,
        };
        Some(Event {
            kind: text(&v["Type"]),
            action: text(&v["Action"]),
            id,
            name: text(&v["Actor"]["Attributes"]["name"]),
            time_nano: v["timeNano"].as_i64().unwrap_or_default(),
            raw: line.to_string(),
        })
    }
}

/// A live event stream; [`EventWatch::finish`] stops it and returns what it saw.
pub struct EventWatch {
    child: Child,
    seen: Arc<Mutex<Vec<Event>>>,
    begin: String,
}

fn marker_name(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "stackshot-e2e-mark-{}-{}-{what}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates and removes a volume named `name`: an event the watch waits for.
fn mark(name: &str) {
    let out = output(&mut docker(&["volume", "create", name]));
    assert!(
        out.status.success(),
        "cannot create the marker volume {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = output(&mut docker(&["volume", "rm", name]));
}

impl EventWatch {
    /// Starts the stream and returns once it is live (its first marker seen).
    pub fn start() -> EventWatch {
        let mut child = Command::new("docker")
            .args(["events", "--format", "{{json .}}"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run docker events");
        let stdout = child.stdout.take().expect("piped");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(e) = Event::parse(&line) {
                    sink.lock().unwrap().push(e);
                }
            }
        });
        let mut watch = EventWatch {
            child,
            seen,
            begin: marker_name("begin"),
        };
        // Until the stream is subscribed, a marker may go unseen: mark again.
        let begin = watch.begin.clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            mark(&begin);
            if watch.wait_for(&begin, Duration::from_secs(2)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "docker events showed none of its marker events within 30 s"
            );
        }
        watch
    }

    fn position(&self, volume: &str) -> Option<usize> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .position(|e| e.kind == "volume" && e.action == "create" && e.id == volume)
    }

    fn wait_for(&mut self, volume: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.position(volume).is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits up to `limit` until the stream saw `container_id` do `first` and,
    /// later, `then` (a stop window closing: `die`, then `start`), however
    /// short the time between them.
    pub fn wait_for_pair(
        &self,
        container_id: &str,
        first: &str,
        then: &str,
        limit: Duration,
    ) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            {
                let seen = self.seen.lock().unwrap();
                let mine = seen
                    .iter()
                    .filter(|e| e.kind == "container" && e.id == container_id);
                let mut saw_first = false;
                for e in mine {
                    if e.action == first {
                        saw_first = true;
                    } else if saw_first && e.action == then {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Stops the stream once it has caught up with now (its end marker seen),
    /// and returns the events between the two markers. Panics when the stream
    /// did not see both markers: then it proves nothing.
    pub fn finish(mut self) -> Events {
        let end = marker_name("end");
        mark(&end);
        let caught_up = self.wait_for(&end, Duration::from_secs(30));
        let _ = self.child.kill();
        let _ = self.child.wait();
        assert!(
            caught_up,
            "the event stream never saw its end marker: it was not live to the end, so it proves nothing"
        );
        let from = self.position(&self.begin).expect("begin marker");
        let to = self.position(&end).expect("end marker");
        let all = self.seen.lock().unwrap();
        // Between the markers in the stream, and not older than the begin
        // marker: Podman's file-backed stream can deliver an event after
        // a later one (its writers append to one log), and one from before
        // the watch must not count as the action's.
        let begun = all[from].time_nano;
        Events(
            all[from + 1..to]
                .iter()
                .filter(|e| !e.id.starts_with("stackshot-e2e-mark-"))
                .filter(|e| e.time_nano >= begun)
                .cloned()
                .collect(),
        )
    }
}

impl Drop for EventWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lifecycle actions the tests reason about.
pub const LIFECYCLE: [&str; 4] = ["kill", "die", "stop", "start"];

/// Events recorded by an [`EventWatch`], in the order the engine sent them.
#[derive(Debug, Clone)]
pub struct Events(pub Vec<Event>);

impl Events {
    /// The lifecycle actions (`kill`, `die`, `stop`, `start`) of one container.
    pub fn actions(&self, container_id: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|e| e.kind == "container" && e.id == container_id)
            .filter(|e| LIFECYCLE.contains(&e.action.as_str()))
            .map(|e| e.action.clone())
            .collect()
    }

    /// The times (ns) of every `action` of one container.
    pub fn times(&self, container_id: &str, action: &str) -> Vec<i64> {
        self.0
            .iter()
            .filter(|e| e.kind == "container" && e.id == container_id && e.action == action)
            .map(|e| e.time_nano)
            .collect()
    }

    /// The first `action` of a container, in ns; panics naming what was seen when absent.
    pub fn first(&self, container_id: &str, action: &str) -> i64 {
        *self.times(container_id, action).first().unwrap_or_else(|| {
            panic!(
                "no {action} event for {container_id}; saw {:?}",
                self.actions(container_id)
            )
        })
    }

    /// Sanity: the stream saw events the test itself caused (say, the app's
    /// `die` and `start`). Panics otherwise, so an empty stream fails a test
    /// instead of passing it.
    pub fn assert_saw(&self, container_id: &str, actions: &[&str]) {
        let seen = self.actions(container_id);
        for a in actions {
            assert!(
                seen.iter().any(|s| s == a),
                "the event stream saw no {a} of {container_id} (saw {seen:?}): it cannot prove anything"
            );
        }
    }

    /// Sanity for a test in which nothing may stop: the stream saw the test's
    /// own `docker exec` in `container_id` (an `exec_start: …` event whose
    /// command contains `command`).
    pub fn assert_saw_exec(&self, container_id: &str, command: &str) {
        assert!(
            self.0.iter().any(|e| e.kind == "container"
                && e.id == container_id
                && e.action.starts_with("exec_start")
                && e.action.contains(command)),
            "the event stream saw no exec of {command:?} in {container_id}: it cannot prove anything (saw {:?})",
            self.0.iter().map(|e| &e.action).collect::<Vec<_>>()
        );
    }

    /// The last `exec_start` in one container whose command contains
    /// `command`; panics naming what was seen when none did.
    fn last_exec_start(&self, container_id: &str, command: &str) -> &Event {
        self.0
            .iter()
            .filter(|e| {
                e.kind == "container"
                    && e.id == container_id
                    && e.action.starts_with("exec_start")
                    && e.action.contains(command)
            })
            .max_by_key(|e| e.time_nano)
            .unwrap_or_else(|| {
                panic!(
                    "no exec of {command:?} in {container_id}; saw {:?}",
                    self.execs(container_id)
                )
            })
    }

    /// When the last `docker exec` in one container whose command contains
    /// `command` started, in ns; panics naming what was seen when none did.
    pub fn last_exec(&self, container_id: &str, command: &str) -> i64 {
        self.last_exec_start(container_id, command).time_nano
    }

    /// When the last `docker exec` in one container whose command contains
    /// `command` started and when it ended (its `exec_die`, matched by exec
    /// id), in ns; panics naming what was seen when either is missing.
    pub fn exec_span(&self, container_id: &str, command: &str) -> (i64, i64) {
        let exec_id = |e: &Event| -> String {
            serde_json::from_str::<Value>(&e.raw)
                .ok()
                .and_then(|v| {
                    v["Actor"]["Attributes"]["execID"]
                        .as_str()
                        .map(str::to_string)
                })
                .unwrap_or_default()
        };
        let start = self.last_exec_start(container_id, command);
        let id = exec_id(start);
        assert!(
            !id.is_empty(),
            "the exec_start event has no execID: {}",
            start.raw
        );
        let die = self
            .0
            .iter()
            .find(|e| e.kind == "container" && e.action == "exec_die" && exec_id(e) == id)
            .unwrap_or_else(|| {
                panic!("no exec_die of the exec of {command:?} ({id}) in {container_id}")
            });
        (start.time_nano, die.time_nano)
    }

    /// The commands run by `docker exec` in one container, in order (from
    /// its `exec_start: …` events).
    pub fn execs(&self, container_id: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|e| e.kind == "container" && e.id == container_id)
            .filter_map(|e| e.action.strip_prefix("exec_start: "))
            .map(str::to_string)
            .collect()
    }

    /// The events of compose project `project`: its containers' (by their
    /// compose label), the workers and drill throwaways stackshot made for
    /// it (`stackshot.project`), and its volumes and networks (named
    /// `<project>_…`). Other tests run beside this one, on the same engine.
    pub fn of_project<'a>(&'a self, project: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
        let prefix = format!("{project}_");
        self.0.iter().filter(move |e| {
            let v: Value = serde_json::from_str(&e.raw).unwrap_or(Value::Null);
            let attrs = &v["Actor"]["Attributes"];
            attrs["com.docker.compose.project"] == project
                || attrs["stackshot.project"] == project
                || ((e.kind == "volume" || e.kind == "network") && e.id.starts_with(&prefix))
                || attrs["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&prefix))
        })
    }

    /// Containers of compose project `project` with any lifecycle event.
    pub fn touched_in(&self, project: &str) -> Vec<String> {
        let prefix = format!("{project}_");
        self.touched()
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect()
    }

    /// Containers with any lifecycle event, by name.
    pub fn touched(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .iter()
            .filter(|e| e.kind == "container" && LIFECYCLE.contains(&e.action.as_str()))
            .map(|e| e.name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}
