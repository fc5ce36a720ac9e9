//! The status page's chart: one bar per run over the last runs, its height
//! the run's duration, with the stop window drawn inside it. Pure geometry
//! (the page's template draws it as inline SVG).

use serde::Serialize;

use crate::daemon::state::RunSummary;

/// The drawing area, in SVG user units.
pub const WIDTH: f64 = 600.0;
/// The bars' height at the longest run.
pub const HEIGHT: f64 = 120.0;
/// How many runs the chart shows at most (the newest).
pub const RUNS: usize = 30;

/// One run's bar.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bar {
    /// Left edge.
    pub x: f64,
    /// Width.
    pub width: f64,
    /// The duration bar's top (0 is the top of the chart).
    pub y: f64,
    /// The duration bar's height.
    pub height: f64,
    /// The window bar's top.
    pub window_y: f64,
    /// The window bar's height (0 when the run opened no window).
    pub window_height: f64,
    /// `success`, `partial` or `failed`: the bar's class.
    pub result: &'static str,
    /// The tooltip: the run, its result, duration and window.
    pub title: String,
}

/// The chart of `runs` (newest first, as the daemon keeps them), oldest on
/// the left, the newest at the right edge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chart {
    /// The bars, oldest first.
    pub bars: Vec<Bar>,
    /// The top of the scale (the longest run), as text: `42 s`, `3.5 min`.
    pub top: String,
    /// The drawing's width and height.
    pub width: f64,
    /// The drawing's height.
    pub height: f64,
}

/// `s` seconds as the page shows them.
pub fn seconds_text(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// Lays out the newest [`RUNS`] of `runs` (newest first).
pub fn chart(runs: &[RunSummary]) -> Chart {
    let shown: Vec<&RunSummary> = runs.iter().take(RUNS).rev().collect();
    let top = shown.iter().map(|r| r.seconds()).fold(1.0_f64, f64::max);
    let slot = WIDTH / RUNS as f64;
    let scale = |s: f64| (s.max(0.0) / top * HEIGHT).clamp(0.0, HEIGHT);
    let bars = shown
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let seconds = r.seconds();
            // A run of a few milliseconds still shows.
            let height = scale(seconds).max(1.0);
            let window = r.window_seconds.map(scale).unwrap_or(0.0).min(height);
            let mut title = format!(
                "{}: {}, {}",
                r.run_id,
                r.result.as_str(),
                seconds_text(seconds)
            );
            if let Some(w) = r.window_seconds {
                title.push_str(&format!(", window {}", seconds_text(w)));
            }
            Bar {
                // Right-aligned: the newest run is always at the right edge.
                x: round((RUNS - shown.len() + i) as f64 * slot + slot * 0.15),
                width: round(slot * 0.7),
                y: round(HEIGHT - height),
                height: round(height),
                window_y: round(HEIGHT - window),
                window_height: round(window),
                result: r.result.as_str(),
                title,
            }
        })
        .collect();
    Chart {
        bars,
        top: seconds_text(top),
        width: WIDTH,
        height: HEIGHT,
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::state::Trigger;
    use crate::report::Outcome;
    use chrono::{DateTime, Duration, Utc};

    fn run(i: i64, seconds: i64, window: Option<f64>, result: Outcome) -> RunSummary {
        let start: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-12-01T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::days(i);
        RunSummary {
            run_id: format!("run-{i}"),
            trigger: Trigger::Schedule,
            started_at: start,
            finished_at: start + Duration::seconds(seconds),
            result,
            reason: None,
            window_seconds: window,
            bytes_added: None,
        }
    }

    #[test]
    fn bars_run_oldest_to_newest_scaled_to_the_longest_run() {
        // Newest first, as the daemon keeps them.
        let runs = [
            run(3, 30, Some(1.5), Outcome::Success),
            run(2, 60, None, Outcome::Failed),
            run(1, 15, Some(15.0), Outcome::Partial),
        ];
        let c = chart(&runs);
        assert_eq!(c.top, "60 s");
        let ids: Vec<_> = c.bars.iter().map(|b| b.title.clone()).collect();
        assert_eq!(
            ids,
            [
                "run-1: partial, 15 s, window 15 s",
                "run-2: failed, 60 s",
                "run-3: success, 30 s, window 1.5 s",
            ]
        );
        let [old, failed, new] = &c.bars[..] else {
            panic!("{c:?}")
        };
        assert!(old.x < failed.x && failed.x < new.x);
        assert_eq!(new.x + new.width, WIDTH - WIDTH / RUNS as f64 * 0.15);
        assert_eq!((failed.y, failed.height), (0.0, HEIGHT));
        assert_eq!((new.y, new.height), (HEIGHT / 2.0, HEIGHT / 2.0));
        // 1.5 s of the longest run's 60 s.
        assert_eq!(new.window_height, 3.0);
        assert_eq!(new.window_y, HEIGHT - 3.0);
        // The window fills a run that was all window; none is drawn for none.
        assert_eq!(old.window_height, old.height);
        assert_eq!(failed.window_height, 0.0);
        assert_eq!(
            c.bars.iter().map(|b| b.result).collect::<Vec<_>>(),
            ["partial", "failed", "success"]
        );
        for b in &c.bars {
            assert!(b.x + b.width <= WIDTH && b.y >= 0.0 && b.y + b.height <= HEIGHT);
        }
    }

    #[test]
    fn only_the_newest_runs_are_drawn_and_a_short_run_still_shows() {
        let runs: Vec<_> = (0..40)
            .rev()
            .map(|i| run(i, 0, None, Outcome::Success))
            .collect();
        let c = chart(&runs);
        assert_eq!(c.bars.len(), RUNS);
        assert!(c.bars[0].title.starts_with("run-10:"), "{:?}", c.bars[0]);
        assert!(c.bars[RUNS - 1].title.starts_with("run-39:"));
        assert!(c.bars.iter().all(|b| b.height >= 1.0));
        assert_eq!(chart(&[]).bars, vec![]);
    }

    #[test]
    fn seconds_read_as_people_read_them() {
        assert_eq!(seconds_text(1.234), "1.2 s");
        assert_eq!(seconds_text(42.4), "42 s");
        assert_eq!(seconds_text(210.0), "3.5 min");
        assert_eq!(seconds_text(9000.0), "2.5 h");
    }
}
