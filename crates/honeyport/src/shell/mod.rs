//! The fake shell that telnet (and later SSH) personas hand a logged-in peer to.
//!
//! Pure and synchronous: a command line goes in, output bytes and what happened come out. No
//! I/O, nothing the peer sends is executed, and URLs are recorded, never fetched. Every
//! buffer is capped (line length, output size, in-memory filesystem size per session).
//!
//! This file fixes the interface the personas use; the implementation grows behind it.

use std::sync::Arc;

/// What a shell looks like: host name, prompt, files and command outputs. Built-in profiles
/// imitate a BusyBox router and a Debian server; a persona picks one and may override fields.
#[derive(Clone, Debug)]
pub struct Profile {
    pub name: String,
    pub hostname: String,
}

impl Profile {
    /// A built-in profile by name (`busybox_router`, `debian_server`).
    pub fn builtin(name: &str) -> Option<Profile> {
        match name {
            "busybox_router" => Some(Profile {
                name: name.into(),
                hostname: "router".into(),
            }),
            "debian_server" => Some(Profile {
                name: name.into(),
                hostname: "srv01".into(),
            }),
            _ => None,
        }
    }

    /// Names of the built-in profiles.
    pub const BUILTIN: &'static [&'static str] = &["busybox_router", "debian_server"];
}

/// Something the shell saw worth recording, beyond the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShellEvent {
    /// One command (after splitting a line on `;`, `&&`, `||`, `|`), as typed.
    Command { input: Vec<u8>, recognised: bool },
    /// A command asked to download something (wget, curl, tftp, ftpget): recorded only.
    Download {
        url: Vec<u8>,
        command: &'static str,
        outfile: Option<Vec<u8>>,
    },
    /// Bytes written into the session's in-memory filesystem.
    FileWrite {
        path: Vec<u8>,
        sha256: String,
        len: u64,
    },
}

/// What one command line did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes to send to the peer (without the next prompt).
    pub output: Vec<u8>,
    pub events: Vec<ShellEvent>,
    /// The peer asked to leave (`exit`, `logout`).
    pub exit: bool,
}

/// One peer's shell session.
pub struct Shell {
    profile: Arc<Profile>,
}

impl Shell {
    pub fn new(profile: Arc<Profile>, _user: &[u8]) -> Shell {
        Shell { profile }
    }

    /// The prompt to send before the next line.
    pub fn prompt(&self) -> Vec<u8> {
        format!("{}# ", self.profile.hostname).into_bytes()
    }

    /// Runs one command line (without its line ending).
    pub fn run_line(&mut self, line: &[u8]) -> Outcome {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            return Outcome::default();
        }
        let exit = matches!(trimmed, b"exit" | b"logout");
        let mut output = Vec::new();
        if !exit {
            output.extend_from_slice(b"sh: ");
            output.extend_from_slice(trimmed);
            output.extend_from_slice(b": not found\r\n");
        }
        Outcome {
            output,
            events: vec![ShellEvent::Command {
                input: trimmed.to_vec(),
                recognised: exit,
            }],
            exit,
        }
    }
}
