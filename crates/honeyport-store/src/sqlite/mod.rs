//! The embedded SQLite backend: one file, `honeyport.db`, in the data dir.

pub mod read;
pub mod schema;
pub mod spool;
pub mod write;

pub use read::SqliteReader;
pub use write::SqliteWriter;

#[cfg(test)]
mod tests;
