//! The process's open-file limit (`RLIMIT_NOFILE`) and how many
//! connections it leaves room for.
//!
//! Every connection holds one descriptor. The usual soft limit (1,024) is
//! far below what a hub is configured for, so the `ssehub` binary raises
//! the soft limit to the hard limit at start ([`raise_to_hard_limit`]) and
//! sizes its connection cap from what it got ([`connection_budget`]),
//! keeping a reserve for the listener, the runtime, logs and files.

use std::io;

/// Descriptors kept out of the connection budget (the listener, stdio, the
/// runtime's epoll and wake-up descriptors, files), at most.
const RESERVE: u64 = 64;

/// The open-file limits of this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NofileLimit {
    /// The limit in force.
    pub soft: u64,
    /// The most the soft limit may be raised to without privileges.
    pub hard: u64,
}

/// Connections that fit under a soft limit of `soft` descriptors: all but
/// a reserve of 64 (a quarter of the limit, for small limits).
///
/// # Examples
///
/// ```
/// use ssehub_tokio::serve::nofile::connection_budget;
/// assert_eq!(connection_budget(1024), 960);
/// assert_eq!(connection_budget(64), 48);
/// ```
pub fn connection_budget(soft: u64) -> usize {
    let budget = soft - RESERVE.min(soft / 4);
    usize::try_from(budget).unwrap_or(usize::MAX)
}

/// Reads the current limits.
///
/// # Errors
///
/// The OS error of `getrlimit`; `Unsupported` off Unix.
pub fn current() -> io::Result<NofileLimit> {
    imp::get()
}

/// Raises the soft limit to the hard limit (on Linux, an unlimited hard
/// limit counts as `fs.nr_open`, the most the kernel accepts) and returns
/// the limits now in force.
///
/// # Errors
///
/// The OS error of `getrlimit` or `setrlimit`; `Unsupported` off Unix.
pub fn raise_to_hard_limit() -> io::Result<NofileLimit> {
    let limit = imp::get()?;
    let target = if limit.hard == imp::INFINITY {
        imp::nr_open().unwrap_or(limit.soft.max(1 << 20))
    } else {
        limit.hard
    };
    if target > limit.soft {
        imp::set(NofileLimit {
            soft: target,
            hard: limit.hard,
        })?;
    }
    imp::get()
}

#[cfg(unix)]
mod imp {
    use super::NofileLimit;
    use std::io;

    #[allow(clippy::unnecessary_cast)] // `rlim_t` is not `u64` everywhere.
    pub(super) const INFINITY: u64 = libc::RLIM_INFINITY as u64;

    pub(super) fn get() -> io::Result<NofileLimit> {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `getrlimit` writes one `rlimit` through a pointer to a
        // live, properly aligned local, and keeps no reference to it.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        #[allow(clippy::useless_conversion)] // `rlim_t` is not `u64` everywhere.
        Ok(NofileLimit {
            soft: u64::from(limit.rlim_cur),
            hard: u64::from(limit.rlim_max),
        })
    }

    pub(super) fn set(target: NofileLimit) -> io::Result<()> {
        let convert = |v: u64| libc::rlim_t::try_from(v).unwrap_or(libc::RLIM_INFINITY);
        let limit = libc::rlimit {
            rlim_cur: convert(target.soft),
            rlim_max: convert(target.hard),
        };
        // SAFETY: `setrlimit` only reads the `rlimit` behind a pointer to a
        // live local for the duration of the call.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub(super) fn nr_open() -> Option<u64> {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

#[cfg(not(unix))]
mod imp {
    use super::NofileLimit;
    use std::io;

    pub(super) const INFINITY: u64 = u64::MAX;

    pub(super) fn get() -> io::Result<NofileLimit> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(super) fn set(_: NofileLimit) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(super) fn nr_open() -> Option<u64> {
        None
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_a_reserve() {
        assert_eq!(connection_budget(20_000), 19_936);
        assert_eq!(connection_budget(8), 6);
        assert_eq!(connection_budget(0), 0);
    }

    #[test]
    fn raising_reaches_the_hard_limit() {
        // Raising within the hard limit needs no privilege, and leaves every
        // other test in this process with more room, never less.
        let before = current().unwrap();
        let after = raise_to_hard_limit().unwrap();
        assert!(after.soft >= before.soft);
        assert_eq!(after.hard, before.hard);
        if before.hard != imp::INFINITY {
            assert_eq!(after.soft, after.hard);
        }
    }
}
