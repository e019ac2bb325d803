//! Host metrics: what the agent samples about its host (CPU, memory, disks, network, load,
//! processes, uptime) as InfluxDB points named as Telegraf names them, so existing InfluxQL
//! queries and dashboards work unchanged:
//!
//! | measurement | tags | fields |
//! |---|---|---|
//! | `cpu` | `cpu` = `cpu-total`, `cpu0`, … | `usage_user`, `usage_system`, `usage_idle`, `usage_iowait`, `usage_nice`, `usage_irq`, `usage_softirq`, `usage_steal` (percent of the interval) |
//! | `mem` | | `total`, `available`, `used`, `free`, `cached`, `buffered`, `used_percent`, `available_percent` |
//! | `swap` | | `total`, `used`, `free`, `used_percent` |
//! | `disk` | `path`, `device`, `fstype` | `total`, `free`, `used`, `used_percent`, `inodes_total`, `inodes_free`, `inodes_used` |
//! | `diskio` | `name` | `reads`, `writes`, `read_bytes`, `write_bytes`, `read_time`, `write_time`, `io_time`, `weighted_io_time`, `iops_in_progress` |
//! | `net` | `interface` | `bytes_sent`, `bytes_recv`, `packets_sent`, `packets_recv`, `err_in`, `err_out`, `drop_in`, `drop_out` |
//! | `system` | | `load1`, `load5`, `load15`, `n_cpus`, `uptime` |
//! | `processes` | | `running`, `blocked`, `total` |
//!
//! Every point carries the tag `host`. Read from `/proc` (the `procfs` crate) and `statvfs`.
//! CPU usage is a difference between two samples, so the first sample has no `cpu` points. A
//! source that cannot be read (a container without `/proc/diskstats`) leaves its measurement
//! out and is named in [`Sample::problems`]; the others are still sampled.

pub mod line_protocol;

use std::collections::BTreeSet;

use procfs::{Current as _, CurrentSI as _};

pub use line_protocol::{Point, Value};

/// Filesystems that are not disks (Telegraf leaves most of them out too).
const PSEUDO_FILESYSTEMS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "fuse.lxcfs",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

/// One round of sampling.
#[derive(Debug, Default)]
pub struct Sample {
    /// The points, all at the same time.
    pub points: Vec<Point>,
    /// Sources that could not be read, with the reason.
    pub problems: Vec<String>,
}

impl Sample {
    /// The points as line protocol, one per line.
    pub fn to_line_protocol(&self) -> String {
        let mut out = String::new();
        for point in &self.points {
            point.write_line(&mut out);
        }
        out
    }
}

/// Samples one host; keeps the previous CPU counters to turn them into usage.
pub struct Sampler {
    host: String,
    previous_cpu: Option<(procfs::CpuTime, Vec<procfs::CpuTime>)>,
}

impl Sampler {
    /// A sampler tagging every point with `host`.
    pub fn new(host: &str) -> Sampler {
        Sampler {
            host: host.to_string(),
            previous_cpu: None,
        }
    }

    /// Samples everything now, stamping the points with `time_ns`.
    pub fn sample(&mut self, time_ns: i64) -> Sample {
        let mut sample = Sample::default();
        let mut add = |name: &str, result: Result<Vec<Point>, String>| match result {
            Ok(points) => sample.points.extend(points),
            Err(error) => sample.problems.push(format!("{name}: {error}")),
        };
        // /proc/stat feeds both `cpu` and `processes`: read once per round.
        let stats = procfs::KernelStats::current().map_err(|e| e.to_string());
        match &stats {
            Ok(stats) => {
                add("cpu", Ok(self.cpu(stats, time_ns)));
                add("processes", processes(stats, time_ns));
            }
            Err(error) => {
                add("cpu", Err(error.clone()));
                add("processes", Err(error.clone()));
            }
        }
        add("mem", memory(time_ns));
        add("disk", disks(time_ns));
        add("diskio", disk_io(time_ns));
        add("net", network(time_ns));
        add("system", system(time_ns));
        for point in &mut sample.points {
            point.tags.push(("host", self.host.clone()));
        }
        sample
    }

    fn cpu(&mut self, stats: &procfs::KernelStats, time_ns: i64) -> Vec<Point> {
        let previous = self
            .previous_cpu
            .replace((stats.total.clone(), stats.cpu_time.clone()));
        let Some((total_before, each_before)) = previous else {
            return Vec::new();
        };
        let mut points = vec![cpu_point(
            "cpu-total".into(),
            &total_before,
            &stats.total,
            time_ns,
        )];
        for (n, (before, now)) in each_before.iter().zip(&stats.cpu_time).enumerate() {
            points.push(cpu_point(format!("cpu{n}"), before, now, time_ns));
        }
        points
    }
}

/// Usage percentages between two readings of one CPU's counters.
fn cpu_point(name: String, before: &procfs::CpuTime, now: &procfs::CpuTime, time_ns: i64) -> Point {
    let parts = |t: &procfs::CpuTime| {
        [
            t.user,
            t.system,
            t.idle,
            t.iowait.unwrap_or(0),
            t.nice,
            t.irq.unwrap_or(0),
            t.softirq.unwrap_or(0),
            t.steal.unwrap_or(0),
        ]
    };
    let (a, b) = (parts(before), parts(now));
    let delta: Vec<f64> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| y.saturating_sub(*x) as f64)
        .collect();
    let total: f64 = delta.iter().sum();
    let percent = |i: usize| {
        if total > 0.0 {
            100.0 * delta[i] / total
        } else {
            0.0
        }
    };
    Point::new("cpu", time_ns)
        .tag("cpu", name)
        .field("usage_user", percent(0))
        .field("usage_system", percent(1))
        .field("usage_idle", percent(2))
        .field("usage_iowait", percent(3))
        .field("usage_nice", percent(4))
        .field("usage_irq", percent(5))
        .field("usage_softirq", percent(6))
        .field("usage_steal", percent(7))
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

fn memory(time_ns: i64) -> Result<Vec<Point>, String> {
    let m = procfs::Meminfo::current().map_err(|e| e.to_string())?;
    let cached = m.cached + m.s_reclaimable.unwrap_or(0);
    let available = m.mem_available.unwrap_or(m.mem_free + cached + m.buffers);
    // As Telegraf (gopsutil) computes it.
    let used = m
        .mem_total
        .saturating_sub(m.mem_free)
        .saturating_sub(m.buffers)
        .saturating_sub(cached);
    let swap_used = m.swap_total.saturating_sub(m.swap_free);
    Ok(vec![
        Point::new("mem", time_ns)
            .field("total", m.mem_total)
            .field("available", available)
            .field("used", used)
            .field("free", m.mem_free)
            .field("cached", cached)
            .field("buffered", m.buffers)
            .field("used_percent", percent(used, m.mem_total))
            .field("available_percent", percent(available, m.mem_total)),
        Point::new("swap", time_ns)
            .field("total", m.swap_total)
            .field("used", swap_used)
            .field("free", m.swap_free)
            .field("used_percent", percent(swap_used, m.swap_total)),
    ])
}

fn disks(time_ns: i64) -> Result<Vec<Point>, String> {
    let mounts = procfs::process::Process::myself()
        .and_then(|p| p.mountinfo())
        .map_err(|e| e.to_string())?;
    let mut seen = BTreeSet::new();
    let mut points = Vec::new();
    for mount in mounts {
        if PSEUDO_FILESYSTEMS.contains(&mount.fs_type.as_str())
            || !seen.insert(mount.mount_point.clone())
        {
            continue;
        }
        let Ok(stat) = rustix::fs::statvfs(&mount.mount_point) else {
            continue;
        };
        let block = stat.f_frsize;
        let total = stat.f_blocks.saturating_mul(block);
        if total == 0 {
            continue;
        }
        let free = stat.f_bfree.saturating_mul(block);
        let available = stat.f_bavail.saturating_mul(block);
        let used = total.saturating_sub(free);
        points.push(
            Point::new("disk", time_ns)
                .tag("path", mount.mount_point.display().to_string())
                .tag("device", mount.mount_source.clone().unwrap_or_default())
                .tag("fstype", mount.fs_type.clone())
                .field("total", total)
                .field("free", available)
                .field("used", used)
                .field("used_percent", percent(used, used + available))
                .field("inodes_total", stat.f_files)
                .field("inodes_free", stat.f_ffree)
                .field("inodes_used", stat.f_files.saturating_sub(stat.f_ffree)),
        );
    }
    Ok(points)
}

fn disk_io(time_ns: i64) -> Result<Vec<Point>, String> {
    let stats = procfs::diskstats().map_err(|e| e.to_string())?;
    Ok(stats
        .into_iter()
        .filter(|d| !d.name.starts_with("loop") && !d.name.starts_with("ram"))
        .map(|d| {
            Point::new("diskio", time_ns)
                .tag("name", d.name.clone())
                .field("reads", d.reads)
                .field("writes", d.writes)
                .field("read_bytes", d.sectors_read.saturating_mul(512))
                .field("write_bytes", d.sectors_written.saturating_mul(512))
                .field("read_time", d.time_reading)
                .field("write_time", d.time_writing)
                .field("io_time", d.time_in_progress)
                .field("weighted_io_time", d.weighted_time_in_progress)
                .field("iops_in_progress", d.in_progress)
        })
        .collect())
}

fn network(time_ns: i64) -> Result<Vec<Point>, String> {
    let devices = procfs::net::dev_status().map_err(|e| e.to_string())?;
    let mut points: Vec<Point> = devices
        .into_values()
        .filter(|d| d.name != "lo")
        .map(|d| {
            Point::new("net", time_ns)
                .tag("interface", d.name.clone())
                .field("bytes_sent", d.sent_bytes)
                .field("bytes_recv", d.recv_bytes)
                .field("packets_sent", d.sent_packets)
                .field("packets_recv", d.recv_packets)
                .field("err_in", d.recv_errs)
                .field("err_out", d.sent_errs)
                .field("drop_in", d.recv_drop)
                .field("drop_out", d.sent_drop)
        })
        .collect();
    points.sort_by(|a, b| a.tags.cmp(&b.tags));
    Ok(points)
}

fn system(time_ns: i64) -> Result<Vec<Point>, String> {
    let load = procfs::LoadAverage::current().map_err(|e| e.to_string())?;
    let uptime = procfs::Uptime::current().map_err(|e| e.to_string())?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    Ok(vec![Point::new("system", time_ns)
        .field("load1", f64::from(load.one))
        .field("load5", f64::from(load.five))
        .field("load15", f64::from(load.fifteen))
        .field("n_cpus", cpus)
        .field("uptime", uptime.uptime as u64)])
}

fn processes(stats: &procfs::KernelStats, time_ns: i64) -> Result<Vec<Point>, String> {
    let total = procfs::process::all_processes()
        .map_err(|e| e.to_string())?
        .count() as u64;
    Ok(vec![Point::new("processes", time_ns)
        .field("running", u64::from(stats.procs_running.unwrap_or(0)))
        .field("blocked", u64::from(stats.procs_blocked.unwrap_or(0)))
        .field("total", total)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(point: &Point, key: &str) -> f64 {
        match point
            .fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
        {
            Some(Value::Float(x)) => x,
            Some(Value::Int(n)) => n as f64,
            None => panic!("{} has no {key}: {point:?}", point.measurement),
        }
    }

    #[test]
    fn this_hosts_sample_has_every_measurement_with_sane_values() {
        let mut sampler = Sampler::new("test-host");
        let first = sampler.sample(1);
        assert!(
            first.points.iter().all(|p| p.measurement != "cpu"),
            "CPU needs two readings"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
        let sample = sampler.sample(2);
        assert!(sample.problems.is_empty(), "{:?}", sample.problems);
        let of = |m: &str| {
            sample
                .points
                .iter()
                .filter(|p| p.measurement == m)
                .collect::<Vec<_>>()
        };
        for m in ["cpu", "mem", "swap", "disk", "system", "processes"] {
            assert!(!of(m).is_empty(), "no {m}");
        }
        let cpus = of("cpu");
        assert_eq!(cpus[0].tags[0], ("cpu", "cpu-total".to_string()));
        assert_eq!(
            cpus.len(),
            1 + std::thread::available_parallelism().unwrap().get()
        );
        for cpu in &cpus {
            for key in ["usage_user", "usage_system", "usage_idle", "usage_iowait"] {
                let v = field(cpu, key);
                assert!((0.0..=100.0).contains(&v), "{key} = {v}");
            }
        }
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert_eq!(field(of("mem")[0], "total"), (kib * 1024) as f64);
        assert!(of("disk")
            .iter()
            .any(|d| d.tags.iter().any(|t| t == &("path", "/".to_string()))));
        assert!(of("net")
            .iter()
            .all(|n| !n.tags.iter().any(|t| t == &("interface", "lo".to_string()))));
        assert!(sample
            .points
            .iter()
            .all(|p| p.tags.contains(&("host", "test-host".to_string())) && p.time_ns == 2));
        let text = sample.to_line_protocol();
        assert_eq!(text.lines().count(), sample.points.len());
        assert!(
            text.starts_with("cpu,cpu=cpu-total,host=test-host usage_user="),
            "{text}"
        );
    }
}
