//! The seeded bug: a registry that registers a client in the order of the
//! Node `ServerEventsManager.registerClient` from the bug report that
//! motivated ssehub (generate the id, start its inactivity timer, arm the
//! close hook, write the headers, and only then insert the client into the
//! map), with no "added" flag.
//!
//! If the transport closes after the hook is armed but before the insert,
//! the hook removes nothing (the client is not in the map yet) and the
//! insert then registers a client whose transport is already gone, with no
//! timer left to ever remove it: a permanent leak, which breaks
//! - **I1** (no registered client without a live transport), and
//! - **I5** (`len() == 0` once every client has been closed).
//!
//! The mutant is built on `ssehub_core::sync`, so under `--cfg ssehub_loom`
//! its locks are loom's and `tests/loom_seeded_bug.rs` can show that the
//! model checker finds the leak. [`Order::InsertFirst`] is the fix the bug
//! report asks for (insert before arming the hook), kept beside the bug so
//! that the same model passes on it and the test is known to discriminate.

use ssehub_core::sync::{Arc, AtomicU64, Mutex, Ordering};
use std::collections::{BTreeSet, HashMap};
use std::fmt;

/// A client id of the mutant registry (Node used a random UUID string).
pub type NodeClientId = u64;

/// The hook a transport runs once when it closes.
type CloseHook = Box<dyn FnOnce() + Send>;

/// A stand-in for Node's `Response`: it can be written to until it closes,
/// and runs its close hook exactly once, when it closes.
///
/// Arming a hook on a transport that is already closed runs the hook at
/// once (as a drop guard would), which is the most forgiving transport the
/// Node order could hope for; the order leaks all the same.
pub struct Transport {
    state: Mutex<TransportState>,
}

struct TransportState {
    closed: bool,
    on_close: Option<CloseHook>,
    written: usize,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock();
        f.debug_struct("Transport")
            .field("closed", &state.closed)
            .field("armed", &state.on_close.is_some())
            .field("written", &state.written)
            .finish()
    }
}

impl Transport {
    /// A live transport with no hook.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(TransportState {
                closed: false,
                on_close: None,
                written: 0,
            }),
        })
    }

    /// `res.on('close', hook)`: arms the hook, or runs it now if the
    /// transport is already closed.
    pub fn on_close(&self, hook: impl FnOnce() + Send + 'static) {
        let mut state = self.state.lock();
        if state.closed {
            drop(state);
            hook();
        } else {
            state.on_close = Some(Box::new(hook));
        }
    }

    /// `res.write(..)`: counted while live, silently dropped once closed
    /// (as Node does for a destroyed socket).
    pub fn write(&self) {
        let mut state = self.state.lock();
        if !state.closed {
            state.written += 1;
        }
    }

    /// The peer goes away: marks the transport closed and runs the armed
    /// hook, if any, outside the transport's lock.
    pub fn close(&self) {
        let hook = {
            let mut state = self.state.lock();
            state.closed = true;
            state.on_close.take()
        };
        if let Some(hook) = hook {
            hook();
        }
    }

    /// `true` until [`close`](Self::close).
    pub fn is_live(&self) -> bool {
        !self.state.lock().closed
    }
}

/// Where registration inserts the client relative to arming the close hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// The bug: arm the hook, write headers, insert afterwards.
    Node,
    /// The fix from the bug report: insert, then arm the hook.
    InsertFirst,
}

struct Maps {
    clients: HashMap<NodeClientId, Arc<Transport>>,
    client_topics: HashMap<NodeClientId, BTreeSet<String>>,
    timers: HashMap<NodeClientId, ()>,
}

/// A faithful port of the Node registry: three maps, no slot state, no
/// "added" flag, and a close handler that removes whatever happens to be
/// there. A cheap handle, like the hub.
#[derive(Clone)]
pub struct NodeRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    order: Order,
    next_id: AtomicU64,
    maps: Mutex<Maps>,
}

impl fmt::Debug for NodeRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeRegistry")
            .field("order", &self.inner.order)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl NodeRegistry {
    /// An empty registry that registers in `order`.
    pub fn new(order: Order) -> Self {
        Self {
            inner: Arc::new(Inner {
                order,
                next_id: AtomicU64::new(1),
                maps: Mutex::new(Maps {
                    clients: HashMap::new(),
                    client_topics: HashMap::new(),
                    timers: HashMap::new(),
                }),
            }),
        }
    }

    /// `registerClient(res)`.
    pub fn register(&self, transport: &Arc<Transport>) -> NodeClientId {
        self.register_with(transport, |_| {})
    }

    /// [`register`](Self::register), calling `between` right after the
    /// headers are written: in the Node order that is after the hook is
    /// armed and before the insert, the window of the bug. Tests use it to
    /// force the bad interleaving without a scheduler.
    pub fn register_with(
        &self,
        transport: &Arc<Transport>,
        between: impl FnOnce(NodeClientId),
    ) -> NodeClientId {
        // (1) generate the id, (2) start the inactivity timer.
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner.maps.lock().timers.insert(id, ());
        if self.inner.order == Order::InsertFirst {
            self.insert(id, transport);
        }
        // (3) arm the close hook: from here a close can run at any time.
        let registry = self.clone();
        transport.on_close(move || registry.unsub_all(id));
        // (4) headers and (5) the initial connection event.
        transport.write();
        transport.write();
        between(id);
        if self.inner.order == Order::Node {
            // (6) insert, whether or not the close handler already ran.
            self.insert(id, transport);
        }
        id
    }

    fn insert(&self, id: NodeClientId, transport: &Arc<Transport>) {
        let mut maps = self.inner.maps.lock();
        maps.clients.insert(id, Arc::clone(transport));
        maps.client_topics.insert(id, BTreeSet::new());
    }

    /// `unsubAll(id)` as the close handler calls it: clears the timer and
    /// deletes from every map; a no-op for an id not inserted yet.
    pub fn unsub_all(&self, id: NodeClientId) {
        let mut maps = self.inner.maps.lock();
        maps.timers.remove(&id);
        maps.clients.remove(&id);
        maps.client_topics.remove(&id);
    }

    /// Subscribes a registered client; `false` for an unknown id.
    pub fn subscribe(&self, id: NodeClientId, topic: &str) -> bool {
        let mut maps = self.inner.maps.lock();
        match maps.client_topics.get_mut(&id) {
            Some(topics) => {
                topics.insert(topic.to_owned());
                true
            }
            None => false,
        }
    }

    /// Registered clients.
    pub fn len(&self) -> usize {
        self.inner.maps.lock().clients.len()
    }

    /// `true` when no client is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks the invariants the real hub keeps, by the same names.
    ///
    /// # Errors
    ///
    /// A message starting with the broken invariant's name: `"I1: …"` for
    /// a registered client whose transport is closed, `"I5: …"` for a
    /// registered client with no inactivity timer (nothing will ever
    /// remove it).
    pub fn check_invariants(&self) -> Result<(), String> {
        let maps = self.inner.maps.lock();
        for (id, transport) in &maps.clients {
            if !transport.is_live() {
                return Err(format!(
                    "I1: client {id} is registered but its transport is closed"
                ));
            }
        }
        for id in maps.clients.keys() {
            if !maps.timers.contains_key(id) {
                return Err(format!(
                    "I5: client {id} is registered with no timer left to remove it"
                ));
            }
        }
        Ok(())
    }
}
