//! Shutdown: refuse new clients and publishes, give every active client its
//! final frame, close everyone.
//!
//! Invariants:
//! - the final frame is the last frame every active client receives: it is
//!   queued and the queue closed in one step, and the hub is marked shut
//!   down under the sequencer first, so no publish that has not finished
//!   pushing by then pushes at all;
//! - after `shutdown` returns, `reserve` and `publish` fail, and every
//!   client is closed or close-pending (I5 then follows as they finish).

use super::slots::SlotState;
use super::Hub;
use crate::codec::{EncodeError, Event};
use crate::reason::CloseReason;
use crate::sync::Ordering;
use crate::ClientId;
use bytes::{BufMut, BytesMut};

/// What a shutdown did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Active clients that got the final frame and were closed.
    pub closed: usize,
    /// Reserved clients marked `ClosePending`.
    pub pending: usize,
}

impl Hub {
    /// Refuses new clients, queues `final_event` (if any) to every active
    /// client with its own jittered `retry:` hint as its last frame, and
    /// closes them all with [`CloseReason::Shutdown`]. Reserved clients
    /// become `ClosePending`. Later publishes fail with
    /// [`PublishError::ShutDown`](crate::PublishError::ShutDown).
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if `final_event` cannot be encoded; nothing changed.
    pub fn shutdown(&self, final_event: Option<&Event>) -> Result<ShutdownReport, EncodeError> {
        let shared = &*self.shared;
        let mut body = BytesMut::new();
        match final_event {
            Some(event) => event.encode_with_id(None, &mut body)?,
            None => body.put_u8(b'\n'),
        }
        let mut all = self.lock_all();
        for reg in &mut all {
            reg.shutting_down = true;
        }
        {
            // Any publish still pushing finishes first; none starts after.
            let _order = shared.sequencer.lock();
            shared.shut_down.store(true, Ordering::Release);
        }
        let mut report = ShutdownReport::default();
        for reg in &mut all {
            for index in reg.indices() {
                let Some(entry) = reg.at_mut(index) else {
                    continue;
                };
                match entry.state {
                    SlotState::Reserved => {
                        let reason = self.close_queue(&entry.queue, CloseReason::Shutdown, None);
                        entry.state = SlotState::ClosePending(reason);
                        reg.pending += 1;
                        report.pending += 1;
                    }
                    SlotState::ClosePending(_) => {}
                    SlotState::Active => {
                        let id = ClientId::new(index, entry.generation);
                        let frame = self.shutdown_frame(id, &body);
                        drop(self.close_active(reg, index, CloseReason::Shutdown, Some(frame)));
                        report.closed += 1;
                    }
                }
            }
        }
        Ok(report)
    }
}
