//! Spare queues: a few emptied client queues kept per thread, so that a
//! connect reuses the allocation (the `Arc`, its queue and the frame ring)
//! a finished client left behind instead of freeing one and allocating the
//! next.
//!
//! A queue has several handles: its slot's entry, its reservation, its
//! stream and one per joined topic. The entry, the reservation and the
//! stream offer the queue here ([`give`]) when they are dropped, and it is
//! kept if that handle was its last; a queue whose last handle is another
//! one is freed as before.
//!
//! Invariants:
//! - **R1** (reuse is unshared): a queue enters the pool only when
//!   `Arc::get_mut` proves the caller's handle is its last one, so no
//!   entry, topic, reservation or stream of any client can reach it; it
//!   is emptied there (frames, waker, close reason, counters) and handed
//!   by [`take`] to exactly one new client, which sees the same queue
//!   [`Queue::new`] would build. A stale stream of the old client cannot
//!   exist: it would be a handle.
//! - **R2** (bounded): a thread keeps at most [`KEEP`] queues, each with
//!   room for at most [`KEEP_FRAMES`] frames and no frame in it, so the
//!   pool holds no client's data and a few kilobytes per thread at most.
//!
//! A thread whose pool is gone (it is exiting) or in use (a drop that runs
//! inside [`give`]) simply frees the queue.

use crate::queue::Queue;
use crate::sync::Arc;
use std::cell::RefCell;

/// Queues a thread keeps.
pub(crate) const KEEP: usize = 8;

/// A queue whose ring grew beyond this many frames is freed rather than
/// kept: the next client would rarely need the room.
pub(crate) const KEEP_FRAMES: usize = 64;

#[cfg(not(ssehub_loom))]
std::thread_local! {
    static SPARE: RefCell<Vec<Arc<Queue>>> = const { RefCell::new(Vec::new()) };
}

#[cfg(ssehub_loom)]
loom::thread_local! {
    static SPARE: RefCell<Vec<Arc<Queue>>> = RefCell::new(Vec::new());
}

/// A queue for a new client with these bounds, its clocks at `now`: a
/// spare one if this thread has one, else a new one.
pub(crate) fn take(max_frames: usize, max_bytes: usize, now: u64) -> Arc<Queue> {
    let spare = SPARE
        .try_with(|pool| pool.try_borrow_mut().ok().and_then(|mut pool| pool.pop()))
        .ok()
        .flatten();
    if let Some(mut queue) = spare {
        // Always unique (R1); checked rather than assumed.
        if let Some(inner) = Arc::get_mut(&mut queue) {
            inner.renew(max_frames, max_bytes, now);
            return queue;
        }
    }
    Arc::new(Queue::new(max_frames, max_bytes, now))
}

/// Offers `queue` to this thread's pool: kept, emptied, if this handle is
/// its last one and there is room (R1, R2). The caller's handle stays as
/// it was; drop it as usual.
pub(crate) fn give(queue: &mut Arc<Queue>) {
    let Some(inner) = Arc::get_mut(queue) else {
        return;
    };
    // The frames and the waker are dropped here, before the pool is
    // borrowed: whatever their drops run cannot find it in use.
    if !inner.empty_for_reuse(KEEP_FRAMES) {
        return;
    }
    let kept = Arc::clone(queue);
    let refused = SPARE
        .try_with(|pool| match pool.try_borrow_mut() {
            Ok(mut pool) if pool.len() < KEEP => {
                pool.push(kept);
                None
            }
            _ => Some(kept),
        })
        .unwrap_or(None);
    // A refused handle is dropped after the borrow ended.
    drop(refused);
}

/// Queues this thread holds (tests).
#[cfg(test)]
pub(crate) fn held() -> usize {
    SPARE.with(|pool| pool.borrow().len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Event;
    use crate::{CloseReason, Drain, Hub, HubConfig, ReserveOptions};
    use std::time::Instant;

    fn hub(config: HubConfig) -> Hub {
        Hub::new(config, Instant::now())
    }

    /// Drops what an earlier test on this thread left in the pool.
    fn empty_pool() {
        SPARE.with(|pool| pool.borrow_mut().clear());
    }

    #[test]
    fn the_last_handle_dropped_keeps_the_queue_and_the_next_client_gets_it_empty() {
        empty_pool();
        let hub = hub(HubConfig::default());
        let r = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let stream = r.stream();
        let id = r.activate().unwrap();
        hub.publish("t", &Event::new("old")).unwrap();
        let _ = hub.close(id, CloseReason::Kicked);
        // The stream still holds the queue, with a frame and the close in it.
        assert_eq!(held(), 0, "a queue its stream still reads is not kept");
        drop(stream);
        assert_eq!(held(), 1, "the last handle gave the queue back");

        let r = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        assert_eq!(held(), 0, "the reservation took the spare queue");
        let stream = r.stream();
        let id = r.activate().unwrap();
        let mut out = Vec::new();
        assert_eq!(
            stream.drain(&mut out, 16),
            Drain::Empty,
            "nothing of the old client"
        );
        assert_eq!(stream.closed_reason(), None);
        hub.publish("t", &Event::new("new")).unwrap();
        assert_eq!(stream.drain(&mut out, 16), Drain::Frames(1));
        assert!(out[0].ends_with(b"data: new\n\n"));
        assert!(hub.check_invariants().is_ok());
        let _ = hub.close(id, CloseReason::ClientGone);
    }

    #[test]
    fn a_stream_dropped_first_leaves_the_queue_to_its_entry() {
        empty_pool();
        let hub = hub(HubConfig::default());
        let r = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        drop(r.stream());
        let id = r.activate().unwrap();
        assert_eq!(held(), 0);
        let _ = hub.close(id, CloseReason::ClientGone);
        assert_eq!(held(), 1, "the freed entry held the last handle");
    }

    #[test]
    fn a_reused_queue_takes_the_new_hubs_bounds() {
        empty_pool();
        let roomy = hub(HubConfig::default());
        let r = roomy.reserve(ReserveOptions::new()).unwrap();
        drop(r.stream());
        drop(r); // released: the reservation held the last handle
        assert_eq!(held(), 1);

        let config = HubConfig {
            queue_max_frames: 1,
            ..HubConfig::default()
        };
        let tight = hub(config);
        let r = tight.reserve(ReserveOptions::new().topic("t")).unwrap();
        assert_eq!(held(), 0);
        let stream = r.stream();
        let id = r.activate().unwrap();
        tight.publish("t", &Event::new("1")).unwrap();
        let report = tight.publish("t", &Event::new("2")).unwrap();
        assert_eq!(report.slow_consumers, [id], "the one-frame bound applies");
        let mut out = Vec::new();
        assert_eq!(stream.drain(&mut out, 16), Drain::Frames(1));
        assert_eq!(
            stream.drain(&mut out, 16),
            Drain::Closed(CloseReason::SlowConsumer)
        );
        let _ = tight.close(id, CloseReason::ClientGone);
    }

    #[test]
    fn the_pool_is_bounded_and_keeps_no_large_ring() {
        empty_pool();
        let hub = hub(HubConfig::default());
        let streams: Vec<_> = (0..KEEP + 3)
            .map(|_| {
                let r = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
                let s = r.stream();
                r.activate().unwrap();
                s
            })
            .collect();
        for s in &streams {
            let _ = hub.close(s.id(), CloseReason::ClientGone);
        }
        drop(streams);
        assert_eq!(held(), KEEP, "at most KEEP queues per thread (R2)");
        empty_pool();

        let r = hub.reserve(ReserveOptions::new().topic("t")).unwrap();
        let stream = r.stream();
        let id = r.activate().unwrap();
        for n in 0..KEEP_FRAMES + 1 {
            hub.publish("t", &Event::new(n.to_string())).unwrap();
        }
        let _ = hub.close(id, CloseReason::ClientGone);
        drop(stream);
        assert_eq!(held(), 0, "a ring grown past KEEP_FRAMES is freed (R2)");
    }
}
