//! Sinks: where the writer thread puts events. Each says what happens when it fails: the
//! store of record ([`crate::store`], SQLite) is retried and any loss counted; JSON lines is
//! best effort beside it.

pub mod jsonl;
