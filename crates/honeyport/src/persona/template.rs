//! Reply templates: bytes with aliases filled in when the reply is sent.
//!
//! - `%TIME_GMT_RFC2822%`: `Thu, 26 Nov 2026 16:40:01 +0000`
//! - `%TIME_GMT_EPOCH%`: seconds since 1970
//! - `%CONTENT_LENGTH%`: length of what follows the first blank line (`\r\n\r\n`) of the
//!   rendered reply, i.e. an HTTP body; 0 if there is none
//! - the echo-this variable (default `%ECHOTHIS%`): bytes the client sent between two
//!   delimiters (see [`EchoThis`]); empty when the request carried none
//!
//! Templates are split into parts once, at build time; rendering is a copy.

use chrono::{DateTime, Utc};

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Lit(Vec<u8>),
    Rfc2822,
    Epoch,
    ContentLength,
    EchoThis,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

const RFC2822: &[u8] = b"%TIME_GMT_RFC2822%";
const EPOCH: &[u8] = b"%TIME_GMT_EPOCH%";
const CONTENT_LENGTH: &[u8] = b"%CONTENT_LENGTH%";

impl Template {
    /// Splits `bytes` on the aliases; `echo_var` is the echo-this variable name, if configured.
    pub fn compile(bytes: &[u8], echo_var: Option<&[u8]>) -> Template {
        let mut parts = Vec::new();
        let mut lit = Vec::new();
        let echo_var = echo_var.filter(|v| !v.is_empty());
        let mut i = 0;
        while i < bytes.len() {
            let rest = &bytes[i..];
            // The echo-this variable can be any string (simple_listener replaces it wherever it
            // appears, and first); the built-in aliases all start with '%'.
            let found = match echo_var {
                Some(v) if rest.starts_with(v) => Some((v.len(), Part::EchoThis)),
                _ if rest[0] == b'%' => [
                    (RFC2822, Part::Rfc2822),
                    (EPOCH, Part::Epoch),
                    (CONTENT_LENGTH, Part::ContentLength),
                ]
                .into_iter()
                .find(|(name, _)| rest.starts_with(name))
                .map(|(name, part)| (name.len(), part)),
                _ => None,
            };
            match found {
                Some((len, part)) => {
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(part);
                    i += len;
                }
                None => {
                    lit.push(bytes[i]);
                    i += 1;
                }
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Template { parts }
    }

    /// Fills in the aliases.
    pub fn render(&self, now: DateTime<Utc>, echo: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cl_at = Vec::new();
        for p in &self.parts {
            match p {
                Part::Lit(b) => out.extend_from_slice(b),
                Part::Rfc2822 => out.extend_from_slice(
                    now.format("%a, %d %b %Y %H:%M:%S +0000")
                        .to_string()
                        .as_bytes(),
                ),
                Part::Epoch => out.extend_from_slice(now.timestamp().to_string().as_bytes()),
                Part::EchoThis => out.extend_from_slice(echo.unwrap_or_default()),
                Part::ContentLength => cl_at.push(out.len()),
            }
        }
        if cl_at.is_empty() {
            return out;
        }
        // Length of the body as it will be sent: the digits go into the header, before the
        // body, so they do not change it.
        let body_len = match find(&out, b"\r\n\r\n") {
            Some(i) => out.len() - (i + 4),
            None => 0,
        };
        let digits = body_len.to_string();
        let mut final_out = Vec::with_capacity(out.len() + digits.len() * cl_at.len());
        let mut prev = 0;
        for at in cl_at {
            final_out.extend_from_slice(&out[prev..at]);
            final_out.extend_from_slice(digits.as_bytes());
            prev = at;
        }
        final_out.extend_from_slice(&out[prev..]);
        final_out
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// How the bytes between the echo-this delimiters are decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EchoFormat {
    Raw,
    Hex,
    Base64,
    /// Backslash escapes as in a Python string literal (`\n`, `\x41`, `\101`, ...), decoded
    /// by a small parser: nothing is evaluated.
    Escaped,
    /// The client picks: the first byte is `R`, `B`, `H` or `E`, optionally preceded by `P`
    /// (persist: keep serving this value until another arrives).
    Dynamic,
}

impl EchoFormat {
    pub fn parse(s: &str) -> Option<EchoFormat> {
        Some(match s {
            "raw" => EchoFormat::Raw,
            "hex" => EchoFormat::Hex,
            "base64" => EchoFormat::Base64,
            "escaped" => EchoFormat::Escaped,
            "dynamic" => EchoFormat::Dynamic,
            _ => return None,
        })
    }
}

/// What an echo-this extraction found in a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extracted {
    /// No pair of delimiters in the request.
    None,
    /// A value, and whether the client asked for it to persist.
    Value { value: Vec<u8>, persist: bool },
    /// Delimiters were there but the content did not decode; the reason is recorded.
    Invalid(String),
}

/// Finds the bytes between the first two `delimiter`s in `data` and decodes them.
pub fn extract(data: &[u8], delimiter: &[u8], format: EchoFormat) -> Extracted {
    let Some(a) = find(data, delimiter) else {
        return Extracted::None;
    };
    let start = a + delimiter.len();
    let Some(len) = find(&data[start..], delimiter) else {
        return Extracted::None;
    };
    let mut msg = &data[start..start + len];
    let mut persist = false;
    let mut format = format;
    if format == EchoFormat::Dynamic {
        if msg.first() == Some(&b'P') {
            persist = true;
            msg = &msg[1..];
        }
        format = match msg.first() {
            Some(b'R') => EchoFormat::Raw,
            Some(b'B') => EchoFormat::Base64,
            Some(b'H') => EchoFormat::Hex,
            Some(b'E') => EchoFormat::Escaped,
            _ => {
                return Extracted::Invalid(
                    "dynamic echo-this needs a format letter R, B, H or E".into(),
                )
            }
        };
        msg = &msg[1..];
    }
    let value = match format {
        EchoFormat::Raw => Ok(msg.to_vec()),
        EchoFormat::Hex => hex::decode(msg.trim_ascii()).map_err(|e| format!("bad hex: {e}")),
        EchoFormat::Base64 => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(msg.trim_ascii())
                .map_err(|e| format!("bad base64: {e}"))
        }
        EchoFormat::Escaped => unescape(msg),
        EchoFormat::Dynamic => Err("dynamic format resolved above".into()),
    };
    match value {
        Ok(value) => Extracted::Value { value, persist },
        Err(e) => Extracted::Invalid(e),
    }
}

/// Decodes Python-style backslash escapes. Unknown escapes are kept as written, like Python.
pub fn unescape(s: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c != b'\\' || i + 1 >= s.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let e = s[i + 1];
        i += 2;
        match e {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'v' => out.push(0x0b),
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'\n' => {}
            b'x' | b'u' | b'U' => {
                // \xHH, \uHHHH, \UHHHHHHHH. Python decodes to a str and simple_listener then
                // encodes it as Latin-1, so code points above 0xFF are an error there too.
                let n = match e {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let esc = e as char;
                let h = s
                    .get(i..i + n)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .ok_or_else(|| format!("truncated or bad \\{esc} escape"))?;
                let h = std::str::from_utf8(h).map_err(|_| format!("bad \\{esc} escape"))?;
                let v = u32::from_str_radix(h, 16)
                    .map_err(|_| format!("bad \\{esc} escape \\{esc}{h}"))?;
                out.push(
                    u8::try_from(v)
                        .map_err(|_| format!("\\{esc}{h} is above 0xFF (Latin-1 only)"))?,
                );
                i += n;
            }
            b'0'..=b'7' => {
                let mut v: u32 = (e - b'0') as u32;
                let mut n = 1;
                while n < 3 && i < s.len() && (b'0'..=b'7').contains(&s[i]) {
                    v = v * 8 + (s[i] - b'0') as u32;
                    i += 1;
                    n += 1;
                }
                out.push(u8::try_from(v).map_err(|_| format!("octal escape {v:o} is over 255"))?);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_571_148_000, 0).unwrap()
    }

    #[test]
    fn aliases() {
        let t = Template::compile(b"Date: %TIME_GMT_RFC2822%\r\nT: %TIME_GMT_EPOCH%\r\n", None);
        assert_eq!(
            t.render(t0(), None),
            b"Date: Tue, 15 Oct 2019 14:00:00 +0000\r\nT: 1571148000\r\n"
        );
    }

    #[test]
    fn content_length_counts_the_body() {
        let t = Template::compile(b"HTTP/1.1 200 OK\r\nContent-Length: %CONTENT_LENGTH%\r\n\r\n<html>Hello %ECHOTHIS%!</html>", Some(b"%ECHOTHIS%"));
        let out = t.render(t0(), Some(b"Didier"));
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\n<html>Hello Didier!</html>"
        );
        let out = t.render(t0(), None);
        assert!(out.ends_with(b"\r\n\r\n<html>Hello !</html>"));
        assert!(find(&out, b"Content-Length: 20\r\n").is_some());
    }

    #[test]
    fn echo_variable_without_percent_signs_is_replaced_everywhere() {
        let t = Template::compile(b"Hi {{who}}! ({{who}}) %TIME_GMT_EPOCH%", Some(b"{{who}}"));
        assert_eq!(
            t.render(t0(), Some(b"Didier")),
            b"Hi Didier! (Didier) 1571148000"
        );
        // A variable that starts like a built-in alias is still found first.
        let t = Template::compile(b"%TIME%", Some(b"%TIME%"));
        assert_eq!(t.render(t0(), Some(b"x")), b"x");
    }

    #[test]
    fn percent_signs_that_are_not_aliases_stay() {
        let t = Template::compile(b"100% %TIME% %%", None);
        assert_eq!(t.render(t0(), None), b"100% %TIME% %%");
    }

    #[test]
    fn echo_this_formats() {
        let d = b"ECHOTHIS";
        assert_eq!(
            extract(b"X: ECHOTHISDidierECHOTHIS\r\n", d, EchoFormat::Raw),
            Extracted::Value {
                value: b"Didier".to_vec(),
                persist: false
            }
        );
        assert_eq!(
            extract(b"ECHOTHIS41424344ECHOTHIS", d, EchoFormat::Hex),
            Extracted::Value {
                value: b"ABCD".to_vec(),
                persist: false
            }
        );
        assert_eq!(
            extract(b"ECHOTHISQUJDRA==ECHOTHIS", d, EchoFormat::Base64),
            Extracted::Value {
                value: b"ABCD".to_vec(),
                persist: false
            }
        );
        assert_eq!(
            extract(b"ECHOTHISa\\x41\\n\\101ECHOTHIS", d, EchoFormat::Escaped),
            Extracted::Value {
                value: b"aA\nA".to_vec(),
                persist: false
            }
        );
        assert_eq!(
            extract(b"ECHOTHISH414141410D0AECHOTHIS", d, EchoFormat::Dynamic),
            Extracted::Value {
                value: b"AAAA\r\n".to_vec(),
                persist: false
            }
        );
        assert_eq!(
            extract(b"ECHOTHISPH414141410D0AECHOTHIS", d, EchoFormat::Dynamic),
            Extracted::Value {
                value: b"AAAA\r\n".to_vec(),
                persist: true
            }
        );
        assert_eq!(
            extract(b"only one ECHOTHIS here", d, EchoFormat::Raw),
            Extracted::None
        );
        assert!(matches!(
            extract(b"ECHOTHISZZECHOTHIS", d, EchoFormat::Hex),
            Extracted::Invalid(_)
        ));
        assert!(matches!(
            extract(b"ECHOTHISQxECHOTHIS", d, EchoFormat::Dynamic),
            Extracted::Invalid(_)
        ));
        assert!(matches!(
            extract(b"ECHOTHIS\\x4ECHOTHIS", d, EchoFormat::Escaped),
            Extracted::Invalid(_)
        ));
    }

    #[test]
    fn unescape_like_a_python_string_literal_encoded_as_latin1() {
        assert_eq!(
            unescape(br"\x41\u0042\U00000043\u00e9").unwrap(),
            b"ABC\xe9"
        );
        assert_eq!(unescape(br"a\qb\\").unwrap(), b"a\\qb\\");
        assert_eq!(unescape(br"\101\0\7").unwrap(), b"A\x00\x07");
        assert!(
            unescape(br"\u20ac").is_err(),
            "the euro sign is not Latin-1"
        );
        assert!(unescape(br"\x+1").is_err());
        assert!(unescape(br"\u41").is_err());
    }
}
