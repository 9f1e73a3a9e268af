//! Byte strings in the config. TOML strings are Unicode, but banners and replies are bytes, so
//! a value can be written several ways:
//!
//! ```toml
//! banner = "220 mail ESMTP\r\n"                        # UTF-8 text, TOML escapes
//! banner = { lines = ["220-mail", "220 ESMTP"] }       # each line ends with CR LF
//! banner = { hex = "ff fd 18 ff fd 20" }               # raw bytes
//! banner = { base64 = "//0Y//0g" }
//! banner = { file = "banners/exim.txt" }               # relative to the config file
//! ```

use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;

use crate::config::{check_readable, read_file_capped, resolve_path, Problems, MAX_CONFIG_FILE};

/// Largest file a banner or reply may be loaded from.
pub const MAX_FILE: u64 = MAX_CONFIG_FILE;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum BytesSpec {
    Text(String),
    Table(BytesTable),
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BytesTable {
    pub text: Option<String>,
    pub lines: Option<Vec<String>>,
    pub hex: Option<String>,
    pub base64: Option<String>,
    pub file: Option<String>,
}

impl BytesSpec {
    /// Checks the spec; records problems at `at`.
    pub fn validate(&self, at: &str, base_dir: &Path, p: &mut Problems<'_>) {
        let BytesSpec::Table(t) = self else { return };
        let given = [
            t.text.is_some(),
            t.lines.is_some(),
            t.hex.is_some(),
            t.base64.is_some(),
            t.file.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            p.at(at, "give exactly one of text, lines, hex, base64, file");
            return;
        }
        if let Some(h) = &t.hex {
            if let Err(e) = decode_hex(h) {
                p.at(at, e);
            }
        }
        if let Some(b) = &t.base64 {
            if let Err(e) = base64::engine::general_purpose::STANDARD.decode(b.trim()) {
                p.at(at, format!("bad base64: {e}"));
            }
        }
        if let Some(f) = &t.file {
            check_readable(base_dir, f, at, p);
        }
    }

    /// The bytes. Reads the file, if the spec names one.
    pub fn load(&self, base_dir: &Path) -> Result<Vec<u8>, String> {
        match self {
            BytesSpec::Text(s) => Ok(s.as_bytes().to_vec()),
            BytesSpec::Table(t) => {
                if let Some(s) = &t.text {
                    Ok(s.as_bytes().to_vec())
                } else if let Some(lines) = &t.lines {
                    let mut out = Vec::new();
                    for l in lines {
                        out.extend_from_slice(l.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                    Ok(out)
                } else if let Some(h) = &t.hex {
                    decode_hex(h)
                } else if let Some(b) = &t.base64 {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .map_err(|e| format!("bad base64: {e}"))
                } else if let Some(f) = &t.file {
                    read_file_capped(&resolve_path(base_dir, f), MAX_FILE)
                } else {
                    Err("empty byte string spec".into())
                }
            }
        }
    }
}

/// Hex digits, with optional whitespace, `:` or `0x` separators.
pub fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    let cleaned: String = s
        .split(|c: char| c.is_whitespace() || c == ':' || c == ',')
        .map(|t| t.trim_start_matches("0x"))
        .collect();
    hex::decode(&cleaned).map_err(|e| format!("bad hex: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let d = Path::new(".");
        assert_eq!(BytesSpec::Text("a\r\n".into()).load(d).unwrap(), b"a\r\n");
        let t = BytesSpec::Table(BytesTable {
            lines: Some(vec!["a".into(), "b".into()]),
            ..Default::default()
        });
        assert_eq!(t.load(d).unwrap(), b"a\r\nb\r\n");
        let t = BytesSpec::Table(BytesTable {
            hex: Some("ff fd 18".into()),
            ..Default::default()
        });
        assert_eq!(t.load(d).unwrap(), vec![0xff, 0xfd, 0x18]);
        let t = BytesSpec::Table(BytesTable {
            base64: Some("//0Y".into()),
            ..Default::default()
        });
        assert_eq!(t.load(d).unwrap(), vec![0xff, 0xfd, 0x18]);
    }
}
