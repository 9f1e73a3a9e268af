//! Durations ("60s", "250ms", "10m", "1h", "1.5s") and sizes ("64KiB", "1MiB", "4096") as they
//! are written in the config file.

use std::time::Duration;

/// Parses a duration: a number followed by `ms`, `s`, `m` or `h`. A bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try \"30s\", \"250ms\", \"10m\")"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {s:?} (ms, s, m, h)"
            ))
        }
    };
    if !secs.is_finite() || !(0.0..=365.0 * 86400.0).contains(&secs) {
        return Err(format!("duration {s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a size in bytes: a number with an optional `B`, `KiB`, `MiB`, `GiB` (or `K`, `M`, `G`,
/// also powers of 1024; `kB`, `MB`, `GB` are powers of 1000).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (try \"64KiB\", \"1MiB\", \"4096\")"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// A duration or size may be written as a string or (for convenience) a bare number.
#[derive(Clone, Debug, serde::Deserialize, PartialEq)]
#[serde(untagged)]
pub enum NumOrStr {
    Int(i64),
    Float(f64),
    Str(String),
}

impl NumOrStr {
    pub fn duration(&self) -> Result<Duration, String> {
        match self {
            NumOrStr::Int(i) if *i >= 0 => Ok(Duration::from_secs(*i as u64)),
            NumOrStr::Float(f) if *f >= 0.0 && f.is_finite() && *f < 1e9 => {
                Ok(Duration::from_secs_f64(*f))
            }
            NumOrStr::Str(s) => parse_duration(s),
            other => Err(format!("{other:?} is not a duration")),
        }
    }

    pub fn size(&self) -> Result<u64, String> {
        match self {
            NumOrStr::Int(i) if *i >= 0 => Ok(*i as u64),
            NumOrStr::Str(s) => parse_size(s),
            other => Err(format!("{other:?} is not a size in bytes")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1e400s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("2MB").unwrap(), 2_000_000);
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }
}
