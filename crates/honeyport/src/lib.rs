//! honeyport: a honeypot sensor that listens on any set of ports and answers with believable
//! personas, recording every byte.
//!
//! # Layout
//!
//! - [`classify`]: protocol detection and client fingerprints (JA3/JA4, HASSH, telnet options)
//! - [`config`]: raw serde types -> `validate` (pure, every error with its position) -> `build`
//! - [`listener`]: bind, accept, slots (global + per source), [`listener::conn::Conn`]
//!   (capped, timed, recorded I/O), UDP flows, session start/end pairing
//! - [`persona`]: the personas; one file per persona, one variant in `PersonaRaw`/`Persona`
//! - [`shell`]: the fake shell (pure: line in, output and events out) telnet and SSH share
//! - [`fetch`]: real downloads of what the shell is asked to fetch (off by default)
//! - [`fleet`]: many sensors, one store: the forwarder (local store -> NATS JetStream) and
//!   `honeyport collect` (JetStream -> a central store), with the stream and the bus connection
//! - [`tls`]: rustls server configs (given PEM or self-signed)
//! - [`pipeline`]: bounded event queue -> writer thread -> sinks; backpressure and loss counts
//! - [`sink`]: rotating JSON lines beside the store of record
//! - [`store`]: the storage boundary ([`honeyport_store`]): writer, reader, SQLite backend, rollups
//! - [`report`]: top ports, port history and trend, rising ports
//! - [`import`]: `honeyport import`, cowrie, firewall and tcp-honeypot logs into the store
//! - [`app`]: wiring used by `honeyport run` and the tests
//! - [`benchdata`]: `honeyport bench-data`, a realistic synthetic store for report benchmarks
//! - [`demo`]: `honeyport demo`, a synthetic scanner mix against the default config, explained
//!
//! Events themselves are defined in the `honeyport-event` crate.

pub mod app;
pub mod benchdata;
pub mod classify;
pub mod config;
pub mod demo;
pub mod fetch;
pub mod fleet;
pub mod import;
pub mod listener;
pub mod persona;
pub mod pipeline;
pub mod report;
pub mod shell;
pub mod sink;
pub mod store;
pub mod tls;
