//! Classification: what each client really speaks and does, whatever the port.
//!
//! - [`detect`]: the protocol of a client's first bytes, from one table of patterns, each
//!   with its test vectors.
//! - [`tls`]: the raw TLS ClientHello (read before rustls sees the stream): SNI, ALPN, and
//!   the JA3 and JA4 client fingerprints.

pub mod detect;
pub mod tls;
