//! The floor of a fan-out: per subscriber, one `Bytes` clone (a reference
//! count increment) and one push onto a `Mutex<VecDeque<Bytes>>`. No
//! design that keeps a lock per client queue can deliver a frame for less;
//! the fan-out bench reports ssehub's cost as a multiple of this.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;

/// One queue per subscriber, and nothing else.
#[derive(Debug)]
pub struct FloorQueues {
    queues: Vec<Mutex<VecDeque<Bytes>>>,
}

impl FloorQueues {
    /// `subscribers` empty queues.
    pub fn new(subscribers: usize) -> Self {
        Self {
            queues: (0..subscribers)
                .map(|_| Mutex::new(VecDeque::new()))
                .collect(),
        }
    }

    /// Pushes a clone of `frame` onto every queue; returns how many.
    pub fn fan_out(&self, frame: &Bytes) -> usize {
        for queue in &self.queues {
            queue.lock().push_back(frame.clone());
        }
        self.queues.len()
    }

    /// Empties every queue (keeping their capacity); returns the frames
    /// removed.
    pub fn drain_all(&self) -> usize {
        self.queues
            .iter()
            .map(|queue| {
                let mut queue = queue.lock();
                let n = queue.len();
                queue.clear();
                n
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fans_out_and_drains() {
        let floor = FloorQueues::new(3);
        assert_eq!(floor.fan_out(&Bytes::from_static(b"data: x\n\n")), 3);
        assert_eq!(floor.fan_out(&Bytes::from_static(b"data: y\n\n")), 3);
        assert_eq!(floor.drain_all(), 6);
        assert_eq!(floor.drain_all(), 0);
    }
}
