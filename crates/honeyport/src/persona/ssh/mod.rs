//! The `ssh` persona (in progress): the client's identification line and KEXINIT are read
//! passively by [`hello`].

pub mod hello;
