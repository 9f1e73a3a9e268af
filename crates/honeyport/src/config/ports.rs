//! Port lists as written in the config: `26`, `"25,26,587,8000-8010"`, or an array of either.

use serde::Deserialize;

/// Ports as written: one number, a string of comma-separated ports and ranges, or an array.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PortsRaw {
    One(i64),
    Spec(String),
    List(Vec<PortsRaw>),
}

/// Expands a port spec into a sorted list without duplicates. Port 0 asks the OS for a free
/// port (useful in tests); it may only appear alone.
pub fn expand(raw: &PortsRaw) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    push(raw, &mut out)?;
    out.sort_unstable();
    let before = out.len();
    out.dedup();
    if out.len() != before {
        return Err("a port appears more than once".into());
    }
    if out.is_empty() {
        return Err("no ports given".into());
    }
    if out.contains(&0) && out.len() > 1 {
        return Err("port 0 (any free port) cannot be combined with other ports".into());
    }
    Ok(out)
}

fn push(raw: &PortsRaw, out: &mut Vec<u16>) -> Result<(), String> {
    match raw {
        PortsRaw::One(n) => out.push(port(*n)?),
        PortsRaw::List(items) => {
            for item in items {
                push(item, out)?;
            }
        }
        PortsRaw::Spec(s) => {
            for part in s.split(',') {
                let part = part.trim();
                if part.is_empty() {
                    return Err(format!("empty item in port list {s:?}"));
                }
                match part.split_once('-') {
                    None => out.push(parse_one(part)?),
                    Some((a, b)) => {
                        let (a, b) = (parse_one(a.trim())?, parse_one(b.trim())?);
                        if a > b {
                            return Err(format!("port range {part:?} runs backwards"));
                        }
                        if a == 0 {
                            return Err(format!("port range {part:?} includes port 0"));
                        }
                        out.extend(a..=b);
                    }
                }
            }
        }
    }
    Ok(())
}

fn parse_one(s: &str) -> Result<u16, String> {
    let n: i64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a port number"))?;
    port(n)
}

fn port(n: i64) -> Result<u16, String> {
    u16::try_from(n).map_err(|_| format!("port {n} is outside 0-65535"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges() {
        let p = expand(&PortsRaw::Spec("25,26,587,8000-8003".into())).unwrap();
        assert_eq!(p, vec![25, 26, 587, 8000, 8001, 8002, 8003]);
        let p = expand(&PortsRaw::List(vec![
            PortsRaw::One(26),
            PortsRaw::Spec("80-81".into()),
        ]))
        .unwrap();
        assert_eq!(p, vec![26, 80, 81]);
    }

    #[test]
    fn bad_specs() {
        for bad in ["", "26,", "70000", "9-1", "x", "0-5", "25,25", "0,1"] {
            assert!(expand(&PortsRaw::Spec(bad.into())).is_err(), "{bad}");
        }
        assert!(expand(&PortsRaw::One(-1)).is_err());
    }
}
