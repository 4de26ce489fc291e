//! How many windows to read at once: adapts to how InfluxDB copes, within `read_concurrency`.
//! Unbounded or too-parallel queries that exhaust InfluxDB are the most common complaint about
//! migration tools; this backs off before that happens.
//!
//! Additive increase, multiplicative decrease (like TCP congestion control): start small and add
//! one read per successful window until the first sign of trouble (slow start), then add one per
//! `limit` successes. A failure retrying can fix (timeout, 5xx, refused connection) halves the
//! limit; a query much slower than usual (3x the running average) cuts it by a quarter.

use std::sync::Mutex;
use std::time::Duration;

/// Reads in flight at the start, if `read_concurrency` allows.
const INITIAL: f64 = 4.0;
/// A query this many times slower than the running average counts as a slowdown.
const SLOW_FACTOR: f64 = 3.0;
/// Weight of a new latency in the running average.
const AVERAGE_WEIGHT: f64 = 0.1;

/// What became of one window read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadOutcome {
    /// The query answered after `latency` (time to the start of the answer).
    Answered { latency: Duration },
    /// A failure that says InfluxDB is overloaded or away.
    Overloaded,
}

#[derive(Debug)]
struct State {
    limit: f64,
    slow_start: bool,
    average_latency: Option<f64>,
}

/// The adaptive limit; shared by all reads of one reader.
#[derive(Debug)]
pub struct AdaptiveLimit {
    max: usize,
    state: Mutex<State>,
}

impl AdaptiveLimit {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            max,
            state: Mutex::new(State {
                limit: INITIAL.min(max as f64),
                slow_start: true,
                average_latency: None,
            }),
        }
    }

    /// The most reads it ever lets be in flight.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Reads that may be in flight now.
    pub fn current(&self) -> usize {
        (self.lock().limit.floor() as usize).clamp(1, self.max)
    }

    /// Learns from one read; returns the new limit when it changed.
    pub fn record(&self, outcome: ReadOutcome) -> Option<usize> {
        let before = self.current();
        {
            let mut state = self.lock();
            match outcome {
                ReadOutcome::Overloaded => {
                    state.limit = (state.limit / 2.0).max(1.0);
                    state.slow_start = false;
                }
                ReadOutcome::Answered { latency } => {
                    let seconds = latency.as_secs_f64();
                    let average = *state.average_latency.get_or_insert(seconds);
                    if seconds > average * SLOW_FACTOR {
                        state.limit = (state.limit * 0.75).max(1.0);
                        state.slow_start = false;
                    } else {
                        state.average_latency =
                            Some(average + AVERAGE_WEIGHT * (seconds - average));
                        let step = if state.slow_start {
                            1.0
                        } else {
                            1.0 / state.limit
                        };
                        state.limit = (state.limit + step).min(self.max as f64);
                    }
                }
            }
        }
        let after = self.current();
        (after != before).then_some(after)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(millis: u64) -> ReadOutcome {
        ReadOutcome::Answered {
            latency: Duration::from_millis(millis),
        }
    }

    #[test]
    fn grows_to_the_maximum_while_influxdb_copes() {
        let limit = AdaptiveLimit::new(50);
        assert_eq!(limit.current(), 4);
        for _ in 0..46 {
            limit.record(answered(20));
        }
        assert_eq!(limit.current(), 50);
        limit.record(answered(20));
        assert_eq!(limit.current(), 50, "never above read_concurrency");
    }

    #[test]
    fn halves_on_overload_and_recovers_slowly() {
        let limit = AdaptiveLimit::new(50);
        for _ in 0..46 {
            limit.record(answered(20));
        }
        assert_eq!(limit.record(ReadOutcome::Overloaded), Some(25));
        assert_eq!(limit.record(ReadOutcome::Overloaded), Some(12));
        // After trouble: one more read per `limit` successes, not one per success.
        for _ in 0..12 {
            limit.record(answered(20));
        }
        assert_eq!(limit.current(), 13);
        for _ in 0..30 {
            limit.record(ReadOutcome::Overloaded);
        }
        assert_eq!(limit.current(), 1, "never below one read");
    }

    #[test]
    fn a_slow_query_backs_off_without_spoiling_the_average() {
        let limit = AdaptiveLimit::new(50);
        for _ in 0..16 {
            limit.record(answered(100));
        }
        assert_eq!(limit.current(), 20);
        assert_eq!(limit.record(answered(1000)), Some(15));
        // The slow answer did not raise the average: the next slow one still counts as slow.
        assert_eq!(limit.record(answered(1000)), Some(11));
        assert_eq!(limit.record(answered(100)), None);
    }

    #[test]
    fn a_small_read_concurrency_is_respected_from_the_start() {
        let limit = AdaptiveLimit::new(2);
        assert_eq!(limit.current(), 2);
        assert_eq!(AdaptiveLimit::new(0).current(), 1);
    }
}
