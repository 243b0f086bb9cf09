//! A model of what a push costs when the reader is a task: its waker.
//!
//! In a server every subscriber's writer is a task parked on its queue (or
//! on its broadcast receiver). A push that finds it parked wakes it, and
//! the task, once polled, parks again by registering a clone of its waker.
//! The fan-out bench's `+wake` rows pay exactly that on both sides, with
//! the same waker, so neither side is charged for the other's runtime.
//!
//! [`Tasks`] holds one task per subscriber. A task's waker does what a
//! runtime's does for a task woken from another task: one atomic swap of
//! its `notified` flag and, if it was not already notified, a push of its
//! index onto a run queue under a lock. [`Tasks::run`] then plays the
//! scheduler: it takes the run queue and polls each woken task once.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

/// The indexes of woken tasks, in wake order.
#[derive(Debug, Default)]
struct RunQueue {
    ready: Mutex<Vec<usize>>,
}

/// One task's waker.
#[derive(Debug)]
struct Task {
    index: usize,
    notified: AtomicBool,
    run_queue: Arc<RunQueue>,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            self.run_queue.ready.lock().push(self.index);
        }
    }
}

/// `n` tasks sharing one run queue.
#[derive(Debug)]
pub struct Tasks {
    tasks: Vec<Arc<Task>>,
    wakers: Vec<Waker>,
    run_queue: Arc<RunQueue>,
    spare: Vec<usize>,
}

impl Tasks {
    /// `n` tasks, none woken.
    pub fn new(n: usize) -> Self {
        let run_queue = Arc::new(RunQueue::default());
        let tasks: Vec<_> = (0..n)
            .map(|index| {
                Arc::new(Task {
                    index,
                    notified: AtomicBool::new(false),
                    run_queue: Arc::clone(&run_queue),
                })
            })
            .collect();
        let wakers = tasks.iter().map(|t| Waker::from(Arc::clone(t))).collect();
        Self {
            tasks,
            wakers,
            run_queue,
            spare: Vec::new(),
        }
    }

    /// Polls every task once (to park them all), woken or not.
    pub fn poll_all(&mut self, mut poll: impl FnMut(usize, &mut Context<'_>)) {
        for (index, waker) in self.wakers.iter().enumerate() {
            self.tasks[index].notified.store(false, Ordering::Release);
            poll(index, &mut Context::from_waker(waker));
        }
    }

    /// Polls each woken task once, in wake order; returns how many ran.
    pub fn run(&mut self, mut poll: impl FnMut(usize, &mut Context<'_>)) -> usize {
        std::mem::swap(&mut *self.run_queue.ready.lock(), &mut self.spare);
        let ran = self.spare.len();
        for &index in &self.spare {
            self.tasks[index].notified.store(false, Ordering::Release);
            poll(index, &mut Context::from_waker(&self.wakers[index]));
        }
        self.spare.clear();
        ran
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_runs_the_task_once() {
        let mut tasks = Tasks::new(3);
        let mut parked = Vec::new();
        tasks.poll_all(|i, cx| parked.push((i, cx.waker().clone())));
        assert_eq!(tasks.run(|_, _| panic!("nothing was woken")), 0);
        parked[2].1.wake_by_ref();
        parked[2].1.wake_by_ref();
        parked[0].1.wake_by_ref();
        let mut ran = Vec::new();
        assert_eq!(tasks.run(|i, _| ran.push(i)), 2);
        assert_eq!(ran, [2, 0]);
        assert_eq!(tasks.run(|_, _| panic!("ran already")), 0);
    }
}
