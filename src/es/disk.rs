//! Elasticsearch's disks: each data node's use against the cluster's disk watermarks.
//!
//! Elasticsearch stops allocating shards to a node above the low watermark, moves shards away
//! above the high one, and at the flood stage makes every index with a shard on that node
//! read-only — the transfer's writes are then refused and the pipe backs up into the agents'
//! WALs. The watermarks are read from the cluster's settings (transient over persistent over
//! defaults); a percentage or ratio is of the node's total bytes, capped by its
//! `max_headroom` (Elasticsearch 8: a large disk needs at most that much free), and a byte
//! value (`"500mb"`) is the free space required.

use serde_json::Value;

use super::client::{EsClient, EsError};

/// One watermark: the used bytes at which a node of a given size crosses it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Watermark {
    /// Crossed when used / total reaches this (0–1), or free space falls under the headroom.
    Ratio {
        /// The used share.
        used: f64,
        /// `max_headroom`: at most this much free space is required (bytes).
        headroom: Option<u64>,
    },
    /// Crossed when free space falls under this many bytes.
    Free(u64),
}

impl Watermark {
    /// Parses `"85%"`, `"0.85"` or a byte size (`"500mb"`, `"10gb"`, `"1024b"`); `headroom`
    /// is the setting's `max_headroom` (`"-1"` for none).
    pub fn parse(value: &str, headroom: Option<&str>) -> Option<Watermark> {
        let value = value.trim();
        let headroom = headroom.and_then(parse_bytes);
        if let Some(percent) = value.strip_suffix('%') {
            let percent: f64 = percent.trim().parse().ok()?;
            return (0.0..=100.0)
                .contains(&percent)
                .then_some(Watermark::Ratio {
                    used: percent / 100.0,
                    headroom,
                });
        }
        if let Ok(ratio) = value.parse::<f64>() {
            return (0.0..=1.0).contains(&ratio).then_some(Watermark::Ratio {
                used: ratio,
                headroom,
            });
        }
        parse_bytes(value).map(Watermark::Free)
    }

    /// The used bytes at which a disk of `total` bytes crosses the watermark.
    pub fn used_limit(&self, total: u64) -> u64 {
        match *self {
            Watermark::Ratio { used, headroom } => {
                // Rounding a share of a byte count: the precision of f64 is ample here.
                let by_ratio = (total as f64 * used) as u64;
                match headroom {
                    Some(headroom) => by_ratio.max(total.saturating_sub(headroom)),
                    None => by_ratio,
                }
            }
            Watermark::Free(free) => total.saturating_sub(free),
        }
    }
}

/// Elasticsearch's byte sizes: a number and a unit (`b`, `kb`, `mb`, `gb`, `tb`, `pb`; powers
/// of 1024). `None` for anything else, and for `-1` (unset).
fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" | "b" => 1,
        "kb" | "k" => 1 << 10,
        "mb" | "m" => 1 << 20,
        "gb" | "g" => 1 << 30,
        "tb" | "t" => 1 << 40,
        "pb" | "p" => 1 << 50,
        _ => return None,
    };
    Some((number * scale as f64) as u64)
}

/// The cluster's three disk watermarks and whether Elasticsearch enforces them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Watermarks {
    /// No new shards above it.
    pub low: Watermark,
    /// Shards moved away above it.
    pub high: Watermark,
    /// Indices with a shard on the node made read-only above it: writes refused.
    pub flood_stage: Watermark,
    /// `cluster.routing.allocation.disk.threshold_enabled`: with `false` none is enforced.
    pub enforced: bool,
}

impl Default for Watermarks {
    /// Elasticsearch 8's defaults.
    fn default() -> Watermarks {
        let ratio = |used, headroom_gb: u64| Watermark::Ratio {
            used,
            headroom: Some(headroom_gb << 30),
        };
        Watermarks {
            low: ratio(0.85, 200),
            high: ratio(0.90, 150),
            flood_stage: ratio(0.95, 100),
            enforced: true,
        }
    }
}

impl Watermarks {
    /// The watermarks in an answer of `GET _cluster/settings?include_defaults&flat_settings`
    /// (transient over persistent over defaults; a value missing or unreadable keeps
    /// Elasticsearch's default).
    pub fn from_settings(settings: &Value) -> Watermarks {
        const LEVELS: [&str; 3] = ["transient", "persistent", "defaults"];
        let get_at = |key: &str| -> Option<(usize, String)> {
            LEVELS.iter().enumerate().find_map(|(n, level)| {
                Some((n, settings.get(level)?.get(key)?.as_str()?.to_string()))
            })
        };
        let get = |key: &str| get_at(key).map(|(_, value)| value);
        let prefix = "cluster.routing.allocation.disk.watermark";
        let defaults = Watermarks::default();
        // A watermark set explicitly has no headroom unless one is set explicitly too
        // (Elasticsearch's default headroom applies only to its default watermark).
        let mark = |name: &str, default: Watermark| {
            let Some((level, value)) = get_at(&format!("{prefix}.{name}")) else {
                return default;
            };
            let headroom = get_at(&format!("{prefix}.{name}.max_headroom"))
                .filter(|(headroom_level, _)| *headroom_level < 2 || level == 2)
                .map(|(_, headroom)| headroom);
            Watermark::parse(&value, headroom.as_deref()).unwrap_or(default)
        };
        Watermarks {
            low: mark("low", defaults.low),
            high: mark("high", defaults.high),
            flood_stage: mark("flood_stage", defaults.flood_stage),
            enforced: get("cluster.routing.allocation.disk.threshold_enabled")
                .is_none_or(|value| value != "false"),
        }
    }

    /// Which watermark a node's disk has crossed.
    pub fn level(&self, disk: &NodeDisk) -> DiskLevel {
        let used = disk.used();
        if used >= self.flood_stage.used_limit(disk.total) {
            DiskLevel::FloodStage
        } else if used >= self.high.used_limit(disk.total) {
            DiskLevel::High
        } else if used >= self.low.used_limit(disk.total) {
            DiskLevel::Low
        } else {
            DiskLevel::Below
        }
    }
}

/// Where a node's disk stands against the watermarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskLevel {
    /// Under the low watermark.
    Below,
    /// Above the low watermark.
    Low,
    /// Above the high watermark.
    High,
    /// Above the flood stage: writes refused.
    FloodStage,
}

/// One node's data disk(s), summed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeDisk {
    /// The node's name.
    pub name: String,
    /// Bytes in all.
    pub total: u64,
    /// Bytes Elasticsearch may still use.
    pub available: u64,
}

impl NodeDisk {
    /// Bytes in use (as Elasticsearch counts them: total less available).
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.available)
    }

    /// The nodes in an answer of `GET _nodes/stats/fs`.
    pub fn from_stats(stats: &Value) -> Vec<NodeDisk> {
        let Some(nodes) = stats.get("nodes").and_then(Value::as_object) else {
            return Vec::new();
        };
        let mut disks: Vec<NodeDisk> = nodes
            .values()
            .filter_map(|node| {
                let total = node.pointer("/fs/total")?;
                Some(NodeDisk {
                    name: node.get("name")?.as_str()?.to_string(),
                    total: total.get("total_in_bytes")?.as_u64()?,
                    available: total.get("available_in_bytes")?.as_u64()?,
                })
            })
            .collect();
        disks.sort_by(|a, b| a.name.cmp(&b.name));
        disks
    }
}

/// The cluster's watermarks and every node's disk, asked of Elasticsearch.
pub async fn read(es: &EsClient) -> Result<(Watermarks, Vec<NodeDisk>), EsError> {
    use elasticsearch::http::Method;
    let timeout = es.control_timeout();
    let (_, settings) = es
        .call(
            Method::Get,
            "/_cluster/settings",
            &[("include_defaults", "true"), ("flat_settings", "true")],
            None,
            timeout,
            false,
        )
        .await?;
    let (_, stats) = es
        .call(
            Method::Get,
            "/_nodes/stats/fs",
            &[("filter_path", "nodes.*.name,nodes.*.fs.total")],
            None,
            timeout,
            false,
        )
        .await?;
    Ok((
        Watermarks::from_settings(&settings),
        NodeDisk::from_stats(&stats),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GB: u64 = 1 << 30;

    #[test]
    fn watermarks_in_every_form() {
        let percent = Watermark::parse("85%", Some("-1")).unwrap();
        assert_eq!(percent.used_limit(100 * GB), 85 * GB);
        let ratio = Watermark::parse("0.5", None).unwrap();
        assert_eq!(ratio.used_limit(100 * GB), 50 * GB);
        let free = Watermark::parse("10gb", None).unwrap();
        assert_eq!(free.used_limit(100 * GB), 90 * GB);
        // A large disk needs at most the headroom free.
        let capped = Watermark::parse("90%", Some("150GB")).unwrap();
        assert_eq!(capped.used_limit(10_000 * GB), 9_850 * GB);
        assert_eq!(Watermark::parse("120%", None), None);
        assert_eq!(Watermark::parse("lots", None), None);
    }

    #[test]
    fn settings_take_transient_over_persistent_over_defaults() {
        let settings = json!({
            "defaults": {
                "cluster.routing.allocation.disk.threshold_enabled": "false",
                "cluster.routing.allocation.disk.watermark.low": "85%",
                "cluster.routing.allocation.disk.watermark.high": "90%",
                "cluster.routing.allocation.disk.watermark.high.max_headroom": "150GB",
                "cluster.routing.allocation.disk.watermark.flood_stage": "95%"
            },
            "persistent": {"cluster.routing.allocation.disk.watermark.high": "70%"},
            "transient": {"cluster.routing.allocation.disk.watermark.low": "1gb"}
        });
        let marks = Watermarks::from_settings(&settings);
        assert!(!marks.enforced);
        assert_eq!(marks.low, Watermark::Free(GB));
        assert_eq!(
            marks.high,
            Watermark::Ratio {
                used: 0.7,
                headroom: None
            }
        );
        let disk = |available| NodeDisk {
            name: "n".into(),
            total: 100 * GB,
            available,
        };
        assert_eq!(marks.level(&disk(50 * GB)), DiskLevel::Below);
        assert_eq!(marks.level(&disk(29 * GB)), DiskLevel::High);
        assert_eq!(marks.level(&disk(GB / 2)), DiskLevel::FloodStage);
        assert!(Watermarks::from_settings(&json!({})).enforced);
    }

    #[test]
    fn node_disks_from_stats() {
        let stats = json!({"nodes": {
            "b": {"name": "es-2", "fs": {"total": {"total_in_bytes": 100, "available_in_bytes": 40}}},
            "a": {"name": "es-1", "fs": {"total": {"total_in_bytes": 100, "available_in_bytes": 90}}},
            "c": {"name": "broken"}
        }});
        let disks = NodeDisk::from_stats(&stats);
        assert_eq!(disks.len(), 2);
        assert_eq!(disks[0].name, "es-1");
        assert_eq!(disks[1].used(), 60);
    }
}
