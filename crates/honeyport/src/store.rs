//! The store as the sensor and the CLI see it. [`honeyport_store`] is the only code that
//! names a database; this re-exports it, with the embedded store's reader as [`Store`].

pub use honeyport_store::sqlite::SqliteReader as Store;
pub use honeyport_store::*;
