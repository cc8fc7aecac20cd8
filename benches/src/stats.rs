//! Percentiles of samples the benchmarks collect themselves.
//!
//! divan prints the fastest, slowest, median and mean sample of each benchmark but no p99, so
//! each benchmark file also times samples of its own after divan's run and prints a report of
//! min, median, p99 and max per benchmark ([`Summary`]). A sample is one call for calls long
//! enough to time alone (PERF-2, PERF-4) and the mean of a batch of calls for sub-microsecond
//! ones (PERF-1), where the p99 is then the p99 of batch means.
//!
//! The report runs after divan unless `--list` or `--test` is given or
//! `PORTAL_BENCH_PERCENTILES=0`; filters given to the benchmark (`cargo bench -- authorize`)
//! select report entries whose name contains one of them.

use std::time::{Duration, Instant};

/// Order statistics of a set of samples, in seconds (floating point, so that per-call means of
/// batches keep their sub-nanosecond digits).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// How many samples.
    pub samples: usize,
    /// The fastest.
    pub min: f64,
    /// The median (the lower one of an even count).
    pub median: f64,
    /// The 99th percentile, nearest rank.
    pub p99: f64,
    /// The slowest.
    pub max: f64,
    /// The mean.
    pub mean: f64,
}

impl Summary {
    /// The summary of `samples`; `None` when there are none.
    #[must_use]
    pub fn of(samples: &[Duration]) -> Option<Self> {
        Self::of_secs(samples.iter().map(Duration::as_secs_f64).collect())
    }

    /// The summary of samples in seconds; `None` when there are none.
    #[must_use]
    pub fn of_secs(mut samples: Vec<f64>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable_by(f64::total_cmp);
        let n = samples.len();
        let rank = |q: f64| ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        Some(Self {
            samples: n,
            min: samples[0],
            median: samples[(n - 1) / 2],
            p99: samples[rank(0.99)],
            max: samples[n - 1],
            mean: samples.iter().sum::<f64>() / n as f64,
        })
    }

    /// One line: `name  median … p99 … (min … max …, n samples)`.
    #[must_use]
    pub fn line(&self, name: &str) -> String {
        format!(
            "{name:<44} median {:>10}  p99 {:>10}  (min {}, max {}, mean {}, {} samples)",
            fmt(self.median),
            fmt(self.p99),
            fmt(self.min),
            fmt(self.max),
            fmt(self.mean),
            self.samples
        )
    }

    /// `name  median ratio …x, p99 ratio …x` of `self` over `floor`.
    #[must_use]
    pub fn ratio_line(&self, name: &str, floor: &Self) -> String {
        format!(
            "{name:<44} median ratio {:.2}x, p99 ratio {:.2}x",
            self.median / floor.median.max(1e-15),
            self.p99 / floor.p99.max(1e-15)
        )
    }
}

/// Seconds with three significant digits and a unit: `4.52 ns`, `812 ns`, `23.4 µs`, `18.2 ms`.
#[must_use]
pub fn fmt(secs: f64) -> String {
    let ns = secs * 1e9;
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    let digits = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    format!("{value:.digits$} {unit}")
}

/// Times `samples` samples of `batch` calls of `f` each (after `samples / 10` samples of
/// warm-up) and summarises the time per call (the mean of each sample's calls).
pub fn sample<O>(samples: usize, batch: u32, mut f: impl FnMut() -> O) -> Summary {
    let batch = batch.max(1);
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples + samples / 10 {
        let t = Instant::now();
        for _ in 0..batch {
            std::hint::black_box(f());
        }
        let per_call = t.elapsed().as_secs_f64() / f64::from(batch);
        if i >= samples / 10 {
            times.push(per_call);
        }
    }
    Summary::of_secs(times).unwrap_or(Summary {
        samples: 0,
        min: 0.0,
        median: 0.0,
        p99: 0.0,
        max: 0.0,
        mean: 0.0,
    })
}

/// Whether the percentile report should run at all (see the module docs).
#[must_use]
pub fn report_enabled() -> bool {
    let off = std::env::var("PORTAL_BENCH_PERCENTILES").is_ok_and(|v| v.trim() == "0");
    !off && !std::env::args().skip(1).any(|a| a == "--list" || a == "--test")
}

/// Whether the report entry `name` is selected by the filters given on the command line (every
/// entry when there are none).
#[must_use]
pub fn report_wanted(name: &str) -> bool {
    let filters = filters();
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}

/// divan's options that take a value in the next argument.
const VALUED: &[&str] = &[
    "--color",
    "--skip",
    "--sort",
    "--sortr",
    "--timer",
    "--sample-count",
    "--sample-size",
    "--min-time",
    "--max-time",
    "--threads",
    "--bytes-format",
    "--items-count",
    "--bytes-count",
    "--chars-count",
    "--cycles-count",
];

fn filters() -> Vec<String> {
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if VALUED.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            out.push(a);
        }
    }
    out
}

/// Where and when a report was taken: cores, memory, commit and date, for the line printed
/// above each report.
#[must_use]
pub fn context_line() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or_else(|| "?".to_owned(), |kib| format!("{:.0}", kib as f64 / 1_048_576.0));
    let commit = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=7"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        );
    let date = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| chrono::DateTime::from_timestamp(i64::try_from(d.as_secs()).ok()?, 0))
        .map_or_else(|| "?".to_owned(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string());
    format!("{cores} cores, {mem_gib} GiB, commit {commit}, {date}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<Duration> = (1..=200).map(Duration::from_micros).collect();
        let s = Summary::of(&samples).expect("samples");
        let us = |n: u64| Duration::from_micros(n).as_secs_f64();
        assert_eq!(s.min, us(1));
        assert_eq!(s.median, us(100));
        assert_eq!(s.p99, us(198));
        assert_eq!(s.max, us(200));
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(fmt(812e-9), "812 ns");
        assert_eq!(fmt(4.523e-9), "4.52 ns");
        assert_eq!(fmt(23.44e-6), "23.4 µs");
    }
}
