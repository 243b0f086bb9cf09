//! The structural invariant checker, for tests and model checking.
//!
//! It takes every lock in order and compares the slots, the topic map and
//! each topic's subscribers with one another. It is exact: every state it
//! can observe (it holds every registry shard, so no lifecycle operation
//! is half done) is one the invariants allow, or it is a bug.

use super::slots::{shard_of, SlotState};
use super::Hub;
use crate::error::InvariantViolation;
use crate::reason::CloseReason;
use crate::sync::{Arc, SharedStr};
use crate::ClientId;
use std::collections::HashMap;

impl Hub {
    /// Checks the structural invariants at this instant; meant for tests and
    /// model checking (it takes every lock in order).
    ///
    /// # Errors
    ///
    /// The first [`InvariantViolation`] found, named after DESIGN.md.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let shared = &*self.shared;
        let all = self.lock_all();
        let map = shared.topics.read();
        let fail = |invariant, detail: String| Err(InvariantViolation { invariant, detail });
        let mut peers: HashMap<SharedStr, usize> = HashMap::new();
        let mut clients = 0;
        for (shard, reg) in all.iter().enumerate() {
            let mut active = 0;
            let mut pending = 0;
            clients += reg.len();
            for (index, entry) in reg.iter() {
                let id = ClientId::new(index, entry.generation);
                if shard_of(id) != shard {
                    return fail("S1", format!("client {id} is in shard {shard}"));
                }
                if let Some(peer) = &entry.peer {
                    *peers.entry(SharedStr::clone(peer)).or_default() += 1;
                }
                match entry.state {
                    SlotState::Active => {
                        active += 1;
                        if let Some(reason) = entry.queue.closed_reason() {
                            // A queue overflowed by a publish that has not yet
                            // finished closing the client is the one window
                            // where this holds; it never outlives the publish.
                            if reason != CloseReason::SlowConsumer {
                                return fail(
                                    "I1",
                                    format!("active client {id} has a closed queue"),
                                );
                            }
                        }
                        if entry.joined.len() != entry.names.len() {
                            return fail("I2", format!("client {id} joined/names length differ"));
                        }
                        for (name, topic) in entry.names.iter().zip(&entry.joined) {
                            let in_map = map.map.get(name).is_some_and(|t| Arc::ptr_eq(t, topic));
                            if !in_map || !topic.state.lock().contains(id) {
                                return fail(
                                    "I2",
                                    format!("client {id} not indexed under {name:?}"),
                                );
                            }
                        }
                    }
                    SlotState::ClosePending(_) => {
                        pending += 1;
                        if entry.queue.closed_reason().is_none() {
                            return fail(
                                "I3",
                                format!("close-pending client {id} has an open queue"),
                            );
                        }
                        if reg.has_deadline(index) {
                            return fail("I5", format!("close-pending client {id} has a deadline"));
                        }
                    }
                    SlotState::Reserved => {
                        if reg.has_deadline(index) {
                            return fail("I5", format!("reserved client {id} has a deadline"));
                        }
                    }
                }
            }
            if active != reg.active || pending != reg.pending {
                return fail("I5", "state counters disagree with the slots".to_owned());
            }
            if reg.deadline_count() > active {
                return fail("I5", "more deadlines than active clients".to_owned());
            }
        }
        if clients as u64 != shared.clients.get() {
            return fail("I5", "the client count disagrees with the slots".to_owned());
        }
        if peers != shared.peers.snapshot() {
            return fail("I5", "peer counts disagree with the slots".to_owned());
        }
        let mut retained = 0u64;
        let mut charged: HashMap<SharedStr, usize> = HashMap::new();
        for (name, topic) in &map.map {
            let state = topic.state.lock();
            retained += state.ring.bytes() as u64;
            if let Some(peer) = &topic.creator {
                *charged.entry(SharedStr::clone(peer)).or_default() += 1;
            }
            if state.dead {
                return fail("I5", format!("dead topic {name:?} still in the map"));
            }
            if state.is_unused() {
                return fail(
                    "I5",
                    format!("topic {name:?} kept with no subscriber or event"),
                );
            }
            let newest = shared.seq.load(crate::sync::Ordering::Acquire);
            if state.last_seq > newest || state.ring.after(state.last_seq).next().is_some() {
                return fail(
                    "P1",
                    format!("topic {name:?}: last published seq {} is behind its ring or ahead of the hub's {newest}", state.last_seq),
                );
            }
            if !self.presence_scheduled(name, &state) {
                return fail(
                    "PR2",
                    format!("topic {name:?}: a pending summary no tick flushes"),
                );
            }
            for sub in &state.subs {
                let ok = all[shard_of(sub.id)]
                    .lookup(sub.id)
                    .is_some_and(|e| e.state == SlotState::Active && e.position(name).is_ok());
                if !ok {
                    return fail("I2", format!("topic {name:?} indexes {} wrongly", sub.id));
                }
            }
        }
        if retained != shared.retained_bytes.get() {
            return fail(
                "H1",
                format!(
                    "rings retain {retained} bytes, the hub-wide total says {}",
                    shared.retained_bytes.get()
                ),
            );
        }
        if charged != *shared.peer_topics.lock() {
            return fail(
                "H2",
                "topics charged to peers disagree with their creators".to_owned(),
            );
        }
        Ok(())
    }
}

/// The checker must see each violation it names: every test builds a
/// healthy hub, breaks exactly one bookkeeping rule behind the API's back,
/// and expects the named invariant.
#[cfg(test)]
mod tests {
    use super::super::slots::SlotState;
    use super::super::{Hub, Reservation};
    use crate::codec::Event;
    use crate::queue::Queue;
    use crate::reason::CloseReason;
    use crate::sync::{Arc, SharedStr};
    use crate::{ClientId, HubConfig, ReserveOptions};
    use std::time::Instant;

    /// A hub holding one client in each state: `a` active on topics `a`
    /// and `b` (peer `p1`), another active on `x`, `r`
    /// reserved (peer `p2`) and `p` close-pending; one event retained on
    /// `a`.
    struct Fixture {
        hub: Hub,
        a: ClientId,
        r: ClientId,
        p: ClientId,
        // Kept alive: dropping a reservation frees its slot.
        _reservations: Vec<Reservation>,
    }

    fn fixture() -> Fixture {
        let hub = Hub::new(HubConfig::default(), Instant::now());
        let a = hub
            .reserve(ReserveOptions::new().topic("a").topic("b").peer("p1"))
            .unwrap()
            .activate()
            .unwrap();
        hub.reserve(ReserveOptions::new().topic("x"))
            .unwrap()
            .activate()
            .unwrap();
        let reserved = hub.reserve(ReserveOptions::new().peer("p2")).unwrap();
        let pending = hub.reserve(ReserveOptions::new()).unwrap();
        let (r, p) = (reserved.id(), pending.id());
        let _ = hub.close(p, CloseReason::Kicked);
        hub.publish("a", &Event::new("kept")).unwrap();
        hub.check_invariants().unwrap();
        Fixture {
            hub,
            a,
            r,
            p,
            _reservations: vec![reserved, pending],
        }
    }

    fn violated(hub: &Hub) -> &'static str {
        hub.check_invariants()
            .expect_err("the checker missed a broken invariant")
            .invariant
    }

    fn topic(hub: &Hub, name: &str) -> Arc<crate::topics::Topic> {
        Arc::clone(&hub.shared.topics.read().map[name])
    }

    #[test]
    fn an_active_client_with_a_closed_queue_breaks_i1() {
        let f = fixture();
        let reg = f.hub.shard(f.a);
        let queue = Arc::clone(&reg.lookup(f.a).unwrap().queue);
        drop(reg);
        queue.close(CloseReason::Kicked, None);
        assert_eq!(violated(&f.hub), "I1");
    }

    #[test]
    fn an_active_client_overflowed_by_a_publish_in_flight_is_allowed() {
        let f = fixture();
        let queue = Arc::clone(&f.hub.shard(f.a).lookup(f.a).unwrap().queue);
        queue.close(CloseReason::SlowConsumer, None);
        f.hub.check_invariants().unwrap();
    }

    #[test]
    fn joined_and_names_of_different_lengths_break_i2() {
        let f = fixture();
        let mut reg = f.hub.shard(f.a);
        reg.lookup_mut(f.a).unwrap().joined.pop();
        drop(reg);
        assert_eq!(violated(&f.hub), "I2");
    }

    #[test]
    fn a_client_missing_from_its_topics_subscribers_breaks_i2() {
        let f = fixture();
        topic(&f.hub, "b").state.lock().unsubscribe(f.a);
        assert_eq!(violated(&f.hub), "I2");
    }

    #[test]
    fn a_client_joined_to_a_topic_no_longer_in_the_map_breaks_i2() {
        let f = fixture();
        let replaced = topic(&f.hub, "b");
        let mut map = f.hub.shared.topics.write();
        map.map.remove("b");
        // Another topic of the same name: the client's is not it.
        let twin = map.create(&SharedStr::from("b"), 4, None);
        drop(map);
        let queue = Arc::clone(&f.hub.shard(f.a).lookup(f.a).unwrap().queue);
        twin.state.lock().subscribe(f.a, queue);
        assert!(replaced.state.lock().contains(f.a));
        assert_eq!(violated(&f.hub), "I2");
    }

    #[test]
    fn a_topic_indexing_a_client_that_is_not_active_breaks_i2() {
        let f = fixture();
        let queue = Arc::new(Queue::new(4, 1024, 0));
        topic(&f.hub, "a").state.lock().subscribe(f.r, queue);
        assert_eq!(violated(&f.hub), "I2");
    }

    #[test]
    fn a_topic_indexing_a_client_not_subscribed_to_it_breaks_i2() {
        let f = fixture();
        let queue = Arc::clone(&f.hub.shard(f.a).lookup(f.a).unwrap().queue);
        topic(&f.hub, "x").state.lock().subscribe(f.a, queue);
        assert_eq!(violated(&f.hub), "I2");
    }

    #[test]
    fn a_close_pending_client_with_an_open_queue_breaks_i3() {
        let f = fixture();
        let mut reg = f.hub.shard(f.r);
        reg.lookup_mut(f.r).unwrap().state = SlotState::ClosePending(CloseReason::Kicked);
        reg.pending += 1;
        drop(reg);
        assert_eq!(violated(&f.hub), "I3");
    }

    #[test]
    fn a_deadline_on_a_client_that_is_not_active_breaks_i5() {
        for pick in [|f: &Fixture| f.p, |f: &Fixture| f.r] {
            let f = fixture();
            let id = pick(&f);
            f.hub.shard(id).schedule(id.index(), 1);
            assert_eq!(violated(&f.hub), "I5", "deadline on {id}");
        }
    }

    #[test]
    fn counters_that_disagree_with_the_slots_break_i5() {
        for field in ["active", "pending"] {
            let f = fixture();
            let mut reg = f.hub.shard(f.a);
            match field {
                "active" => reg.active += 1,
                _ => reg.pending += 1,
            }
            drop(reg);
            assert_eq!(violated(&f.hub), "I5", "{field}");
        }
    }

    #[test]
    fn peer_counts_that_disagree_with_the_slots_break_i5() {
        // A peer tag with no client, and a wrong count for a real one.
        let f = fixture();
        assert!(f.hub.shared.peers.acquire(&SharedStr::from("ghost"), 9));
        assert_eq!(violated(&f.hub), "I5");
        let f = fixture();
        assert!(f.hub.shared.peers.acquire(&SharedStr::from("p1"), 9));
        assert_eq!(violated(&f.hub), "I5");
    }

    #[test]
    fn a_client_count_that_disagrees_with_the_slots_breaks_i5() {
        let f = fixture();
        f.hub.shared.clients.add(1);
        assert_eq!(violated(&f.hub), "I5");
    }

    #[test]
    fn more_deadlines_than_active_clients_break_i5() {
        let f = fixture();
        let mut reg = f.hub.shard(f.a);
        assert_eq!(reg.deadline_count(), reg.active, "one deadline each");
        let elsewhere = f.a.index() + 1000 * super::super::slots::SHARDS as u32;
        reg.schedule(elsewhere, 1);
        drop(reg);
        assert_eq!(violated(&f.hub), "I5");
    }

    #[test]
    fn a_dead_topic_left_in_the_map_breaks_i5() {
        let f = fixture();
        topic(&f.hub, "x").state.lock().dead = true;
        assert_eq!(violated(&f.hub), "I5");
    }

    #[test]
    fn an_unused_topic_left_in_the_map_breaks_i5() {
        let f = fixture();
        f.hub
            .shared
            .topics
            .write()
            .create(&SharedStr::from("empty"), 4, None);
        assert_eq!(violated(&f.hub), "I5");
    }

    #[test]
    fn presence_counters_outside_the_ring_and_the_hub_break_p1() {
        // Newer than anything the hub assigned.
        let f = fixture();
        topic(&f.hub, "x").state.lock().last_seq = 2;
        assert_eq!(violated(&f.hub), "P1");
        // Older than an event the ring retains.
        let f = fixture();
        topic(&f.hub, "a").state.lock().last_seq = 0;
        assert_eq!(violated(&f.hub), "P1");
    }

    #[test]
    fn a_pending_presence_summary_no_tick_will_flush_breaks_pr2() {
        let hub = Hub::new(
            HubConfig {
                presence: crate::PresenceConfig {
                    patterns: vec!["rooms/*".to_owned()],
                    burst: 0,
                    ..crate::PresenceConfig::default()
                },
                ..HubConfig::default()
            },
            Instant::now(),
        );
        // With no burst, the first join is coalesced into a summary due at
        // the window's end.
        let _client = hub
            .reserve(ReserveOptions::new().topic("rooms/a"))
            .unwrap()
            .activate()
            .unwrap();
        hub.check_invariants().unwrap();
        hub.shared.presence.due.lock().clear();
        assert_eq!(violated(&hub), "PR2");
    }

    #[test]
    fn a_retained_total_that_disagrees_with_the_rings_breaks_h1() {
        let f = fixture();
        f.hub.shared.retained_bytes.add(1);
        assert_eq!(violated(&f.hub), "H1");
    }

    #[test]
    fn peer_charges_that_disagree_with_the_creators_break_h2() {
        let f = fixture();
        f.hub
            .shared
            .peer_topics
            .lock()
            .insert(SharedStr::from("ghost"), 1);
        assert_eq!(violated(&f.hub), "H2");
    }
}
