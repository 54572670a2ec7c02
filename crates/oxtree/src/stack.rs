//! Deep directory trees against the thread's stack.
//!
//! Commit, checkout, export, diff and the /etc merge recurse once per directory level. A
//! tree's depth is its author's choice (a hostile server can serve a chain of 100,000
//! dirtrees in a few megabytes, and `pull` walks it without recursion), so each recursive
//! step first asks [`check`] whether this thread's stack still has room, and fails with an
//! error naming the path instead of overflowing (a SIGABRT, with the work half done). The
//! CLI runs its work on threads with large stacks ([`BIG_STACK`]), so trees as deep as
//! ostree's own tools handle (several thousand levels) go through.

use crate::error::{Error, Result};
use std::cell::Cell;

/// The stack size the CLI gives its main work thread and the rayon pool's threads:
/// reserved address space, touched only by trees that need it.
pub const BIG_STACK: usize = 512 << 20;

/// Give the global rayon pool (checkout's and commit's workers) threads of [`BIG_STACK`];
/// a no-op once the pool exists.
pub fn use_big_rayon_stacks() {
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(BIG_STACK)
        .build_global();
}

/// Room left below the current frame that a recursive step must find: enough for one
/// level's own calls (hashing, GVariant decoding, rayon's joins) after the check.
const MARGIN: usize = 1 << 20;

thread_local! {
    /// The lowest address of this thread's stack (0: not known yet, 1: unknown).
    static LOW: Cell<usize> = const { Cell::new(0) };
}

fn stack_low() -> usize {
    LOW.with(|low| {
        if low.get() == 0 {
            low.set(query_stack_low().unwrap_or(1));
        }
        low.get()
    })
}

fn query_stack_low() -> Option<usize> {
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread, which is then read and
    // destroyed; no pointer outlives the calls.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        ok.then_some(addr as usize)
    }
}

/// Fail, naming `what` (the directory about to be entered), when this thread's stack is
/// nearly used up.
pub fn check(what: impl FnOnce() -> String) -> Result<()> {
    let here = 0u8;
    let sp = std::hint::black_box(std::ptr::addr_of!(here)) as usize;
    let low = stack_low();
    if low > 1 && sp < low.saturating_add(MARGIN) {
        return Err(Error::InvalidArgument(format!(
            "{}: the directory tree is too deep (its levels used up the stack)",
            what()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dive(n: usize) -> Result<usize> {
        check(|| format!("level {n}"))?;
        let pad = std::hint::black_box([0u8; 4096]);
        Ok(dive(n + 1)? + usize::from(pad[n % 4096]))
    }

    #[test]
    fn endless_recursion_ends_in_an_error_not_an_overflow() {
        let r = std::thread::Builder::new()
            .stack_size(4 << 20)
            .spawn(|| dive(0))
            .expect("spawn")
            .join()
            .expect("no overflow");
        let e = r.expect_err("refused").to_string();
        assert!(e.contains("too deep"), "{e}");
    }
}
