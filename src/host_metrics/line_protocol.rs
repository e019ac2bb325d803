//! InfluxDB line protocol: `measurement,tag=v field=1.5,count=3i 1700000000000000000`.
//!
//! Escaping follows InfluxDB 1.x: commas and spaces in measurements; commas, equals signs and
//! spaces in tag keys, tag values and field keys. Integers carry the `i` suffix; a float that
//! is not finite cannot be written and its field is left out (a point left with no field is not
//! written at all). Timestamps are nanoseconds.

use std::fmt::Write as _;

/// A field's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A float (`1.5`).
    Float(f64),
    /// An integer (`3i`); counters above `i64::MAX` are clamped.
    Int(i64),
}

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Value {
        Value::Float(x)
    }
}

/// One point: a measurement, its tags, fields and time.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// `cpu`, `mem`, ...
    pub measurement: &'static str,
    /// Tag keys and values (the series); written sorted by key, as InfluxDB prefers.
    pub tags: Vec<(&'static str, String)>,
    /// Field keys and values.
    pub fields: Vec<(&'static str, Value)>,
    /// Nanoseconds since the Unix epoch.
    pub time_ns: i64,
}

impl Point {
    /// A point with no tags or fields yet.
    pub fn new(measurement: &'static str, time_ns: i64) -> Point {
        Point {
            measurement,
            tags: Vec::new(),
            fields: Vec::new(),
            time_ns,
        }
    }

    /// Adds a tag.
    pub fn tag(mut self, key: &'static str, value: impl Into<String>) -> Point {
        self.tags.push((key, value.into()));
        self
    }

    /// Adds a field.
    pub fn field(mut self, key: &'static str, value: impl Into<Value>) -> Point {
        self.fields.push((key, value.into()));
        self
    }

    /// Appends the point as one line (with its newline) to `out`; nothing when it has no
    /// writable field.
    pub fn write_line(&self, out: &mut String) {
        let fields: Vec<&(&str, Value)> = self
            .fields
            .iter()
            .filter(|(_, v)| !matches!(v, Value::Float(x) if !x.is_finite()))
            .collect();
        if fields.is_empty() {
            return;
        }
        escape(out, self.measurement, &[',', ' ']);
        let mut tags: Vec<&(&str, String)> =
            self.tags.iter().filter(|(_, v)| !v.is_empty()).collect();
        tags.sort_by_key(|(k, _)| *k);
        for (key, value) in tags {
            out.push(',');
            escape(out, key, &[',', '=', ' ']);
            out.push('=');
            escape(out, value, &[',', '=', ' ']);
        }
        for (i, (key, value)) in fields.into_iter().enumerate() {
            out.push(if i == 0 { ' ' } else { ',' });
            escape(out, key, &[',', '=', ' ']);
            out.push('=');
            // Writing into a String cannot fail.
            let _ = match value {
                Value::Float(x) => write!(out, "{x:?}"),
                Value::Int(n) => write!(out, "{n}i"),
            };
        }
        let _ = writeln!(out, " {}", self.time_ns);
    }
}

fn escape(out: &mut String, text: &str, special: &[char]) {
    for c in text.chars() {
        if c == '\n' {
            // A newline would end the line: never valid in a key or tag.
            out.push(' ');
            continue;
        }
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_escape_sort_tags_and_suffix_integers() {
        let mut out = String::new();
        Point::new("disk", 1_700_000_000_000_000_000)
            .tag("path", "/mnt/my disk,1")
            .tag("host", "web=01")
            .field("used_percent", 12.5)
            .field("total", 1024u64)
            .field("broken", f64::NAN)
            .write_line(&mut out);
        assert_eq!(
            out,
            "disk,host=web\\=01,path=/mnt/my\\ disk\\,1 used_percent=12.5,total=1024i 1700000000000000000\n"
        );
        let mut none = String::new();
        Point::new("cpu", 1)
            .field("x", f64::INFINITY)
            .write_line(&mut none);
        assert!(
            none.is_empty(),
            "a point without a writable field is left out"
        );
        let mut whole = String::new();
        Point::new("system", 5)
            .field("load1", 2.0)
            .write_line(&mut whole);
        assert_eq!(whole, "system load1=2.0 5\n", "a whole float stays a float");
    }
}
