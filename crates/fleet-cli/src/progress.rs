//! Progress of long operations: a live spinner with pull bytes on a terminal, plain
//! lines on stderr when piped, nothing with `--json`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use fleet_core::Progress;

use crate::output::Output;

/// Shows [`Progress`] steps as they come.
pub(crate) struct ProgressView {
    bar: Option<indicatif::ProgressBar>,
    plain: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Bytes done and in all, per layer being pulled.
    layers: BTreeMap<String, (u64, u64)>,
    last_health: Option<String>,
}

impl ProgressView {
    pub(crate) fn new(out: Output, title: &str) -> ProgressView {
        let bar = out.interactive().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {prefix}: {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.set_prefix(title.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        ProgressView {
            bar,
            plain: !out.is_json() && !out.is_quiet() && !out.interactive(),
            state: Mutex::default(),
        }
    }

    pub(crate) fn show(&self, step: Progress) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let line = match step {
            Progress::Resolving { image } => Some(format!("resolving {image}")),
            Progress::Resolved { tag, digest } => Some(format!(
                "resolved to {} ({digest})",
                tag.as_deref().unwrap_or("a digest")
            )),
            Progress::Pulling(pull) => {
                if let (Some(layer), Some(current), Some(total)) =
                    (&pull.layer, pull.current, pull.total)
                {
                    state.layers.insert(layer.clone(), (current, total));
                }
                let (done, total) = state
                    .layers
                    .values()
                    .fold((0, 0), |(d, t), (c, a)| (d + c, t + a));
                match &self.bar {
                    Some(bar) => {
                        bar.set_message(format!(
                            "pulling {} / {}",
                            indicatif::HumanBytes(done),
                            indicatif::HumanBytes(total)
                        ));
                        None
                    }
                    // Piped: one line per finished layer, not per progress tick.
                    None => (pull.status == "Pull complete")
                        .then(|| format!("pulled layer {}", pull.layer.as_deref().unwrap_or("?"))),
                }
            }
            Progress::Creating { container } => Some(format!("creating container {container}")),
            Progress::Starting { instance } => Some(format!("starting {instance}")),
            Progress::Probed {
                attempt,
                health,
                reason,
                starting,
            } => {
                let (status, text) = probe_line(attempt, &health, reason.as_deref(), starting);
                let changed = state.last_health.as_deref() != Some(status);
                state.last_health = Some(status.to_owned());
                match &self.bar {
                    Some(bar) => {
                        bar.set_message(text);
                        None
                    }
                    None => changed.then_some(text),
                }
            }
            Progress::Stopping { instance } => Some(format!("stopping {instance}")),
            Progress::RunningExec { instance, command } => {
                Some(format!("running `{command}` in {instance}"))
            }
            Progress::Archiving { instance } => Some(format!("archiving {instance}'s data")),
            Progress::Verifying { archive } => Some(format!("verifying {}", archive.display())),
            Progress::Restoring { instance, archive } => Some(format!(
                "restoring {} into {instance}'s data directory",
                archive.display()
            )),
            Progress::RollingBack { instance, reason } => {
                Some(format!("{reason}; putting {instance}'s previous data back"))
            }
            _ => None,
        };
        if let Some(line) = line {
            match &self.bar {
                Some(bar) => bar.set_message(line),
                None if self.plain => {
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
                None => {}
            }
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A probe's line, and the status it shows (a line is printed when that changes).
///
/// A failure during the start period is the app starting, not a fault: it shows as
/// `starting…`. Its reason ("connection refused") would alarm for nothing; if the app
/// never comes up, the error says why.
fn probe_line<'a>(
    attempt: u32,
    health: &'a str,
    reason: Option<&str>,
    starting: bool,
) -> (&'a str, String) {
    if starting {
        return ("starting", format!("health probe {attempt}: starting…"));
    }
    let reason = reason.map(|r| format!(": {r}")).unwrap_or_default();
    (health, format!("health probe {attempt}: {health}{reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(attempt: u32, health: &str, reason: Option<&str>, starting: bool) -> String {
        let (status, line) = probe_line(attempt, health, reason, starting);
        format!("[{status}] {line}")
    }

    /// Regression (issue 14): every create printed `health probe 1: unhealthy: request
    /// failed: connection error: Connection reset by peer` while the app was starting.
    #[test]
    fn probes_in_the_start_period_show_as_starting() {
        let reset = Some("request failed: connection error: Connection reset by peer");
        insta::assert_snapshot!(check(1, "unhealthy", reset, true), @"[starting] health probe 1: starting…");
        insta::assert_snapshot!(check(2, "healthy", None, false), @"[healthy] health probe 2: healthy");
        insta::assert_snapshot!(check(31, "unhealthy", Some("HTTP 503"), false), @"[unhealthy] health probe 31: unhealthy: HTTP 503");
        insta::assert_snapshot!(check(3, "degraded", Some("db slow"), false), @"[degraded] health probe 3: degraded: db slow");
    }
}
