//! The PostgreSQL backend: the same tables, rows and answers as the SQLite one
//! ([`crate::sqlite`], the reference), in a database named by a `postgres://` URL.
//!
//! - [`schema`]: the tables (one definition, created idempotently by a writer, in one
//!   transaction under an advisory lock), `events` partitioned by UTC day.
//! - [`write`]: [`PgWriter`], a batch is one transaction ([`crate::fold::apply`]) of a handful
//!   of set-based statements (arrays through `unnest`, events too: new by identity), whatever the
//!   batch's size. A writer whose connection broke (the server restarted, the network went)
//!   fails that call and connects again on the next: the sensor's pipeline retries a failed
//!   batch, and a batch is all or nothing.
//! - [`read`]: [`PgReader`], [`crate::Reader`] with the same results and the same order (ties
//!   included) as SQLite: every text column is `COLLATE "C"` (bytewise, like SQLite), items and
//!   addresses are `bytea` (bytewise too).
//!
//! Several writers (one per sensor) may share a database: each upsert takes its rows in key
//! order, so two batches never deadlock on the rows they share (the fleet-wide rollups above
//! all); they wait for each other on those rows instead, one commit at a time.
//!
//! Text: PostgreSQL's `text` cannot hold a NUL character, SQLite's can. A NUL in a text value
//! (in practice the summary columns that carry a client's bytes: `client_version`, a client
//! name) is stored as U+FFFD here, rather than failing the batch again and again; the events
//! themselves (JSON, which escapes NUL) and the rollup items (`bytea`) are exact.
//!
//! No TLS yet (`NoTls`): use it on loopback, a unix socket (`?host=/run/postgresql`) or a
//! trusted network.

pub mod read;
pub mod schema;
pub mod write;

pub use read::PgReader;
pub use write::PgWriter;

use std::borrow::Cow;
use std::time::Duration;

use ::postgres::{Client, Config, NoTls};

use crate::{Result, StoreError};

/// `url` with its password (in the user info, or a `password=` parameter) replaced by `***`:
/// what messages show. Errs on the side of hiding too much for a malformed URL.
pub fn redact(url: &str) -> String {
    let Some(i) = url.find("://") else {
        return url.to_string();
    };
    let (scheme, rest) = url.split_at(i + 3);
    let mut out = String::from(scheme);
    // The last '@' ends the user info (an unencoded '@' in a password would otherwise show
    // the password's tail).
    let after = match rest.rfind('@') {
        Some(at) => {
            let info = &rest[..at];
            match info.find(':') {
                Some(c) => {
                    out.push_str(&info[..c]);
                    out.push_str(":***");
                }
                None => out.push_str(info),
            }
            &rest[at..]
        }
        None => rest,
    };
    match after.split_once('?') {
        None => out.push_str(after),
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
    }
    out
}

/// A PostgreSQL error as one line: the server's message (`ERROR: ...`, with its detail) or the
/// client's and its causes (`error connecting to server: Connection refused ...`).
/// (`postgres::Error`'s own message is only its kind, "db error".)
pub(crate) fn message(e: &::postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.to_string().replace('\n', " ");
    }
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// The connection settings of `url`: its own, plus an application name and a connect timeout
/// when it names none, and the server's notices (`relation ... already exists, skipping`) as
/// debug logs.
pub(crate) fn config(url: &str) -> Result<Config> {
    let mut c: Config = url.parse().map_err(|source| StoreError::Postgres {
        location: redact(url),
        source,
    })?;
    if c.get_application_name().is_none() {
        c.application_name("honeyport");
    }
    if c.get_connect_timeout().is_none() {
        c.connect_timeout(Duration::from_secs(10));
    }
    c.notice_callback(|n| tracing::debug!(notice = %n.message(), "postgres"));
    Ok(c)
}

/// Connects (no TLS).
pub(crate) fn connect(c: &Config) -> std::result::Result<Client, ::postgres::Error> {
    c.connect(NoTls)
}

/// A string as a `text` value: PostgreSQL refuses NUL characters, so they become U+FFFD.
pub(crate) fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_shown() {
        for (url, shown) in [
            (
                "postgres://u:s3cret@db.example:5432/hp",
                "postgres://u:***@db.example:5432/hp",
            ),
            (
                "postgresql://u@127.0.0.1/hp?sslmode=disable",
                "postgresql://u@127.0.0.1/hp?sslmode=disable",
            ),
            (
                "postgres://127.0.0.1/hp?user=u&password=s3cret&x=1",
                "postgres://127.0.0.1/hp?user=u&password=***&x=1",
            ),
            ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
            ("postgres://u:a/b?c@h/db", "postgres://u:***@h/db"),
            (
                "postgres:///hp?host=/run/postgresql",
                "postgres:///hp?host=/run/postgresql",
            ),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
    }

    #[test]
    fn nul_becomes_replacement_character() {
        assert_eq!(text("a\0b"), "a\u{fffd}b");
        assert!(matches!(text("ab"), Cow::Borrowed("ab")));
    }
}
