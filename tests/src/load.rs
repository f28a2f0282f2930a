//! A load generator for update tests: workers that request one URL back to back until
//! stopped, half over keep-alive connections and half on a new connection each time,
//! counting every answer and every failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Requests running in the background.
pub struct Load {
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
    errors: std::sync::Mutex<Vec<String>>,
    /// Each answered request's latency, in microseconds.
    latencies: std::sync::Mutex<Vec<u32>>,
}

/// What a load saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Answers with a 2xx status.
    pub ok: u64,
    /// Anything else: other statuses, refused or broken connections, timeouts.
    pub failed: u64,
    /// The first few failures, described.
    pub errors: Vec<String>,
    /// Each answered request's latency, in microseconds, in order.
    pub latencies_us: Vec<u32>,
}

impl LoadReport {
    /// The `p`-th percentile (0 to 100) of the answered requests' latencies.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
        Duration::from_micros(u64::from(sorted[rank.min(sorted.len() - 1)]))
    }
}

impl Load {
    /// Starts `workers` workers (at least 2) requesting `url`.
    pub fn start(url: &str, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let handles = (0..workers.max(2))
            .map(|index| {
                let keep_alive = index % 2 == 0;
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .pool_max_idle_per_host(if keep_alive { 1 } else { 0 })
                    .build()
                    .expect("a reqwest client");
                let (url, stop, counts) = (url.to_owned(), stop.clone(), counts.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let sent = std::time::Instant::now();
                        let failure = match client.get(&url).send().await {
                            Ok(response) if response.status().is_success() => {
                                match response.bytes().await {
                                    Ok(_) => None,
                                    Err(e) => Some(format!("body: {e}")),
                                }
                            }
                            Ok(response) => Some(format!("status {}", response.status())),
                            Err(e) => Some(format!("{e}")),
                        };
                        match failure {
                            None => {
                                let micros =
                                    u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                                counts
                                    .latencies
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .push(micros);
                                counts.ok.fetch_add(1, Ordering::Relaxed)
                            }
                            Some(error) => {
                                {
                                    let mut errors =
                                        counts.errors.lock().unwrap_or_else(|e| e.into_inner());
                                    if errors.len() < 10 {
                                        errors.push(error);
                                    }
                                }
                                // A refused connection must not spin: the app is down.
                                tokio::time::sleep(Duration::from_millis(5)).await;
                                counts.failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                })
            })
            .collect();
        Load {
            stop,
            counts,
            workers: handles,
        }
    }

    /// What the load saw so far.
    pub fn report(&self) -> LoadReport {
        LoadReport {
            ok: self.counts.ok.load(Ordering::Relaxed),
            failed: self.counts.failed.load(Ordering::Relaxed),
            errors: self
                .counts
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            latencies_us: self
                .counts
                .latencies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Stops the workers; what they saw.
    pub async fn stop(mut self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        for worker in std::mem::take(&mut self.workers) {
            let _ = worker.await;
        }
        self.report()
    }
}
