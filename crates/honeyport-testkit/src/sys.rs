//! The few libc calls the fixtures need, behind safe functions.
#![allow(unsafe_code)]

use std::process::Child;

pub(crate) const SIGINT: i32 = libc::SIGINT;
pub(crate) const SIGQUIT: i32 = libc::SIGQUIT;
pub(crate) const SIGKILL: i32 = libc::SIGKILL;

/// Whether this process runs with effective uid 0.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Sends `signal` to `child` unless it has already exited. Returns false when it had exited (it
/// is then reaped, so its pid is never signalled after it could have been reused).
pub(crate) fn signal(child: &mut Child, signal: i32) -> bool {
    if !matches!(child.try_wait(), Ok(None)) {
        return false;
    }
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return false;
    };
    // SAFETY: kill has no memory-safety preconditions; `pid` is our own child, not yet reaped
    // (try_wait above saw it running), so the pid cannot belong to another process.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// Registers `f` to run when the process exits normally (`exit`, or returning from `main`,
/// which is how the test harness ends).
pub(crate) fn at_exit(f: extern "C" fn()) {
    // SAFETY: `f` is a plain function that lives for the whole program; atexit only stores it.
    let rc = unsafe { libc::atexit(f) };
    assert_eq!(rc, 0, "atexit failed");
}
