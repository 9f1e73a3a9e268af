//! Fixtures for integration tests that need real servers: PostgreSQL ([`pg::Postgres`]) and
//! NATS ([`nats::NatsServer`]), from Debian's packages (`./test.sh` installs them).
//!
//! Every server listens on 127.0.0.1 only, on a free port, keeps all its files (data, sockets,
//! config, logs) in a fresh temporary directory, and is stopped and its directory removed when
//! the fixture is dropped. A watchdog process per server does the same if the test process dies
//! without dropping it (an abort, a SIGKILL), so no server outlives the tests.
//!
//! Each child process writes its stdout and stderr to a log file in that directory; a server
//! that does not come up panics with the tail of its log.
//!
//! ```no_run
//! use honeyport_testkit::{nats::NatsServer, pg};
//!
//! let db_url = pg::shared().fresh_database(); // one PostgreSQL per test process
//! let mut nats = NatsServer::start(true); // JetStream on
//! // ... run the code under test against db_url and nats.url() ...
//! nats.restart(); // same port, same store dir
//! ```

pub mod nats;
pub mod pg;
mod sys;
mod util;
