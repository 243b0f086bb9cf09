//! Heap bytes per idle client, counted by a wrapping global allocator:
//! ssehub's hub state (slot, queue, topic index entry, deadline, and the
//! `ClientStream` a writer holds) against baseline A's maps and
//! baseline B's broadcast receiver.
//!
//! ```text
//! hub_memory [CLIENTS]     (default 100 000, all on one topic)
//! ```
//!
//! Goal (issue 8): ssehub's hub state ≤ 1 KiB per idle client.

use ssehub_benches::baseline_a::NodeStyleHub;
use ssehub_benches::baseline_b::BroadcastHub;
use ssehub_core::{Hub, HubConfig, ReserveOptions};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts live heap bytes (requested sizes) on top of the system allocator.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counter is
// only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same layout, as the caller guarantees for `alloc`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn main() {
    let clients: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("CLIENTS must be a number"))
        .unwrap_or(100_000);

    let before = live();
    let hub = Hub::new(
        HubConfig {
            max_clients: clients.max(1),
            max_clients_per_peer: clients.max(1),
            ..HubConfig::default()
        },
        Instant::now(),
    );
    let streams: Vec<_> = (0..clients)
        .map(|_| {
            let r = hub
                .reserve(ReserveOptions::new().topic("idle").peer("127.0.0.1"))
                .expect("reserve");
            let s = r.stream();
            r.activate().expect("activate");
            s
        })
        .collect();
    let ssehub = (live() - before) as f64 / clients as f64;
    drop(streams);
    drop(hub);

    let before = live();
    let node = NodeStyleHub::new();
    let queues: Vec<_> = (0..clients)
        .map(|_| {
            let (id, res) = node.register_client();
            node.subscribe(&id, "idle");
            // The connected event was written; a live socket would have
            // flushed it.
            res.lock().clear();
            res
        })
        .collect();
    let node_bytes = (live() - before) as f64 / clients as f64;
    drop(queues);
    drop(node);

    let before = live();
    let broadcast = BroadcastHub::new(1024);
    let receivers: Vec<_> = (0..clients).map(|_| broadcast.subscribe("idle")).collect();
    let b_bytes = (live() - before) as f64 / clients as f64;
    drop(receivers);

    println!(
        "{{\"clients\":{clients},\"ssehub_bytes_per_client\":{ssehub:.1},\"baseline_a_bytes_per_client\":{node_bytes:.1},\"baseline_b_bytes_per_client\":{b_bytes:.1}}}"
    );
    eprintln!(
        "heap per idle client over {clients}: ssehub {ssehub:.0} B (goal ≤ 1024), baseline A {node_bytes:.0} B, baseline B (receiver only, no axum stream) {b_bytes:.0} B"
    );
}
