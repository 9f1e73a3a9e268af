//! Integration tests: the real sensor on 127.0.0.1:0 (and [::1]:0), real sockets, real
//! clients. One binary; one module per area.

#![allow(clippy::unwrap_used)]
mod cli;
mod common;
mod downloads;
mod examples;
mod fleet;
mod fleet_e2e;
mod ftp;
mod http;
mod import;
mod ja;
mod limits;
mod multiport;
mod net;
mod report;
mod scripted;
mod shutdown;
mod smoke;
mod smtp;
mod ssh;
mod storage;
mod syn;
mod tags;
mod telnet;
mod tls;
mod udp;
