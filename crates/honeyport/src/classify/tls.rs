//! The raw TLS ClientHello, JA3 and JA4 (being written).
