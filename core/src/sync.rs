//! The synchronization facade: the only place in the crate that names a lock
//! or an atomic type.
//!
//! Every other module imports `Mutex`, `RwLock`, `Condvar`, `Arc` and the
//! atomics from here. In a normal build they are `parking_lot`'s poison-free
//! locks and `std`'s atomics; when the crate is compiled with
//! `--cfg ssehub_loom` they are [loom]'s instrumented types behind the same
//! API, so the model checker explores the very code that ships.
//!
//! The API is parking_lot's: `lock()`, `read()` and `write()` return the guard
//! directly, and [`Condvar::wait`] takes the guard by `&mut`.
//!
//! The module is public (and hidden from the docs) only so that the
//! verification crate can build its seeded-bug mutant on the same
//! primitives; it is not a stable API.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(ssehub_loom))]
pub(crate) mod imp {
    pub use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};
    pub use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    pub use std::sync::Arc;
}

#[cfg(ssehub_loom)]
pub(crate) mod imp {
    //! loom-backed twins of the parking_lot types, poison-free like them.

    pub use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    pub use loom::sync::Arc;
    use std::ops::{Deref, DerefMut};
    use std::sync::PoisonError;

    /// A loom mutex with parking_lot's `lock()` signature.
    #[derive(Debug)]
    pub struct Mutex<T>(loom::sync::Mutex<T>);

    /// Guard of [`Mutex`]; the `Option` lets [`Condvar::wait`] move the
    /// inner guard out and back through a `&mut`.
    #[derive(Debug)]
    pub struct MutexGuard<'a, T>(Option<loom::sync::MutexGuard<'a, T>>);

    impl<T> Mutex<T> {
        /// A new mutex holding `value`.
        pub fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        /// Locks, ignoring poison.
        pub fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(self.0.lock().unwrap_or_else(PoisonError::into_inner)))
        }

        /// The value, through the only handle to the mutex.
        pub fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            // The Option is `None` only inside `Condvar::wait`, which holds
            // the only `&mut` to this guard for that whole time.
            match &self.0 {
                Some(guard) => guard,
                None => unreachable!("guard observed during Condvar::wait"),
            }
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            match &mut self.0 {
                Some(guard) => guard,
                None => unreachable!("guard observed during Condvar::wait"),
            }
        }
    }

    /// A loom condition variable with parking_lot's `wait(&mut guard)`.
    #[derive(Debug, Default)]
    pub struct Condvar(loom::sync::Condvar);

    impl Condvar {
        /// A new condition variable.
        pub fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }

        /// Waits, releasing and re-taking the guard's lock.
        pub fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            if let Some(inner) = guard.0.take() {
                guard.0 = Some(self.0.wait(inner).unwrap_or_else(PoisonError::into_inner));
            }
        }

        /// Wakes every waiter.
        pub fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// A loom reader-writer lock with parking_lot's `read()`/`write()`.
    #[derive(Debug)]
    pub struct RwLock<T>(loom::sync::RwLock<T>);

    impl<T> RwLock<T> {
        /// A new lock holding `value`.
        pub fn new(value: T) -> Self {
            Self(loom::sync::RwLock::new(value))
        }

        /// Shared access, ignoring poison.
        pub fn read(&self) -> loom::sync::RwLockReadGuard<'_, T> {
            self.0.read().unwrap_or_else(PoisonError::into_inner)
        }

        /// Exclusive access, ignoring poison.
        pub fn write(&self) -> loom::sync::RwLockWriteGuard<'_, T> {
            self.0.write().unwrap_or_else(PoisonError::into_inner)
        }
    }
}

pub use imp::{
    Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, MutexGuard, Ordering, RwLock,
};

/// This thread's home number: handed out from 0 in the order threads first
/// ask for one, then fixed for the thread's life. The hub picks a new
/// client's registry shard from it, so a thread keeps reserving in the same
/// shard (its cache lines stay on its core) and two threads tend to use
/// different ones. Under loom the counter and the thread-local are loom's,
/// reset for every explored execution, so the choice is part of the model.
#[cfg(not(ssehub_loom))]
pub(crate) fn thread_home() -> usize {
    use std::cell::Cell;
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local!(static HOME: Cell<Option<usize>> = const { Cell::new(None) });
    HOME.with(|home| {
        home.get().unwrap_or_else(|| {
            let next = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            home.set(Some(next));
            next
        })
    })
}

/// See the non-loom twin.
#[cfg(ssehub_loom)]
pub(crate) fn thread_home() -> usize {
    use std::cell::Cell;
    loom::lazy_static! {
        static ref NEXT: loom::sync::atomic::AtomicUsize = loom::sync::atomic::AtomicUsize::new(0);
    }
    loom::thread_local! {
        static HOME: Cell<Option<usize>> = Cell::new(None);
    }
    HOME.with(|home| {
        home.get().unwrap_or_else(|| {
            let next = NEXT.fetch_add(1, loom::sync::atomic::Ordering::Relaxed);
            home.set(Some(next));
            next
        })
    })
}

/// `T` alone on its cache lines: 128 bytes, as the adjacent-line
/// prefetcher fetches lines in pairs. A value written by every thread
/// (a hub-wide count, a lock word) then costs its writers one line
/// moving between cores, and the read-mostly fields beside it (the
/// configuration, the clock source) stay in every core's cache.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Padded<T>(pub T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A statistics cell that loom never models.
///
/// Counters, gauges and the hub's advisory clock only ever record facts;
/// no decision about which client owns what depends on their ordering, so
/// exploring their interleavings would only slow the models down. They are
/// always `std` atomics with relaxed ordering.
#[derive(Debug, Default)]
pub struct Counter(std::sync::atomic::AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Subtracts `n` (which an earlier `add` must cover).
    pub fn sub(&self, n: u64) {
        self.0.fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Adds one if the value is below `limit`; `false` (and no change) if
    /// it is not. One atomic read-modify-write: two callers never both
    /// take the last unit.
    pub fn increment_below(&self, limit: u64) -> bool {
        self.0
            .fetch_update(
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
                |n| (n < limit).then_some(n + 1),
            )
            .is_ok()
    }

    /// Raises the value to `n` if it is lower.
    pub fn max(&self, n: u64) {
        // A read first: a value already as high costs no write to a line
        // other threads read.
        if self.get() < n {
            self.0.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// An immutable shared string (topic names, peer tags).
///
/// Always `std`'s `Arc<str>`: the string never changes after creation, so
/// there is nothing for loom to explore in it, and loom's `Arc` lacks the
/// `Hash`/`Ord` that map keys need.
pub type SharedStr = std::sync::Arc<str>;

/// A shared, never-modelled handle for values outside the hub's state
/// (a test clock): always `std`'s `Arc`, for the reason [`Counter`] is.
pub type PlainArc<T> = std::sync::Arc<T>;
