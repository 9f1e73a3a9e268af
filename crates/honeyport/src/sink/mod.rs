//! Sinks: where the writer thread puts events. Each says what happens when it fails: SQLite
//! (the store of record) is retried and any loss counted; JSON lines is best effort beside it.

pub mod jsonl;
pub mod sqlite;
