//! The standard `process_*` metrics (no project prefix, so stock dashboards and alerts find
//! them), read at scrape time through the `procfs` crate: clock ticks and page size come from
//! the running kernel (64 KiB pages on some arm64 systems), not from constants.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds` and
/// `process_start_time_seconds`, as the Prometheus client libraries name them. Nothing where
/// there is no /proc.
#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                p.rss_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                p.vsize_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                p.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                p.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                p.start_time_seconds,
            ),
        ] {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

/// One reading of the process.
#[derive(Debug)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub rss_bytes: f64,
    pub vsize_bytes: f64,
    pub open_fds: f64,
    pub max_fds: f64,
    pub start_time_seconds: f64,
}

/// Reads /proc/self through procfs; None off Linux or when /proc cannot be read.
#[cfg(target_os = "linux")]
pub fn read() -> Option<ProcessStats> {
    use procfs::process::{LimitValue, Process};
    let me = Process::myself().ok()?;
    let stat = me.stat().ok()?;
    let ticks = procfs::ticks_per_second() as f64;
    let page = procfs::page_size() as f64;
    let boot = procfs::boot_time_secs().ok()? as f64;
    let max_fds = match me.limits().ok()?.max_open_files.soft_limit {
        LimitValue::Value(n) => n as f64,
        LimitValue::Unlimited => f64::INFINITY,
    };
    Some(ProcessStats {
        cpu_seconds: (stat.utime as f64 + stat.stime as f64) / ticks,
        rss_bytes: stat.rss as f64 * page,
        vsize_bytes: stat.vsize as f64,
        open_fds: me.fd_count().ok()? as f64,
        max_fds,
        start_time_seconds: boot + stat.starttime as f64 / ticks,
    })
}

#[cfg(not(target_os = "linux"))]
pub fn read() -> Option<ProcessStats> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn process_stats_come_from_the_running_kernel() {
        let p = read().expect("/proc is there on Linux");
        assert!(p.rss_bytes > 0.0 && p.vsize_bytes >= p.rss_bytes);
        // The resident size is a whole number of the kernel's pages, whatever their size.
        let page = procfs::page_size() as f64;
        assert_eq!(p.rss_bytes % page, 0.0);
        assert!(p.open_fds >= 3.0, "stdin, stdout, stderr at least");
        assert!(p.max_fds >= p.open_fds);
        let now = chrono::Utc::now().timestamp() as f64;
        assert!(p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 86_400.0);
        assert!(p.cpu_seconds >= 0.0);
    }
}
