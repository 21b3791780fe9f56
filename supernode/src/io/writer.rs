//! The lease writer: a task that stores the core's lease events in order, one transaction
//! per queue-full, and the control replies held until the write they announce is done.
//! Relayed data never waits for it, and the event loop never blocks on it.

use super::store::Store;
use super::udp::BatchSocket;
use crate::proto::Event;
use n2n_protocol::types::Transmit;
use tokio::sync::mpsc;

/// First byte of a data datagram (relayed as is, never held behind a lease write).
const DATA_FORM: u8 = (n2n_protocol::wire::VERSION << 4) | 2;

/// A batch of events to store and the replies that wait for it.
type Write = (Vec<Event>, Vec<Transmit>);
/// The replies of stored batches, how many batches, and how the write went.
pub type Written = (Vec<Transmit>, usize, Result<(), String>);

/// The writer task and the replies queued behind it.
pub struct LeaseWriter {
    jobs: mpsc::Sender<Write>,
    /// Stored batches come back here (their replies are then sent).
    pub written: mpsc::Receiver<Written>,
    task: tokio::task::JoinHandle<()>,
    in_flight: usize,
}

impl LeaseWriter {
    /// Starts the writer on `store`.
    pub fn spawn(store: Store) -> Self {
        let (jobs, mut queue) = mpsc::channel::<Write>(256);
        let (done, written) = mpsc::channel::<Written>(256);
        let task = tokio::spawn(async move {
            while let Some((mut events, mut held)) = queue.recv().await {
                // Everything queued meanwhile goes in the same transaction: a slow disk
                // delays replies by one write, not by one write per queued batch.
                let mut batches = 1;
                while let Ok((e, h)) = queue.try_recv() {
                    events.extend(e);
                    held.extend(h);
                    batches += 1;
                }
                let result = store.apply(&events).await.map_err(|e| format!("{e:#}"));
                if done.send((held, batches, result)).await.is_err() {
                    break;
                }
            }
        });
        Self {
            jobs,
            written,
            task,
            in_flight: 0,
        }
    }

    /// Sends `pending` (drained): leases in `events` are stored before the replies that
    /// announce them go out, and later replies keep their order behind them; relayed data
    /// goes now. Returns the number of writes that could not be queued (counted as errors).
    pub async fn submit(
        &mut self,
        events: &mut Vec<Event>,
        pending: &mut Vec<Transmit>,
        udp: &mut BatchSocket,
    ) -> u64 {
        let persist = events.iter().any(Store::persists);
        if !persist && self.in_flight == 0 {
            udp.send_all(pending).await;
            pending.clear();
            events.clear();
            return 0;
        }
        let (data, control): (Vec<_>, Vec<_>) = pending
            .drain(..)
            .partition(|t| t.payload.first() == Some(&DATA_FORM));
        udp.send_all(&data).await;
        if !persist && control.is_empty() {
            events.clear();
            return 0;
        }
        match self.jobs.try_send((std::mem::take(events), control)) {
            Ok(()) => {
                self.in_flight += 1;
                0
            }
            // Never block the loop on the disk: past the queue's depth (or without a
            // writer), replies go now and the leases live in memory only.
            Err(e) => {
                let closed = matches!(e, mpsc::error::TrySendError::Closed(_));
                let (_, control) = e.into_inner();
                tracing::error!(
                    closed,
                    "lease writes are backed up; serving on, leases kept in memory"
                );
                if closed {
                    self.in_flight = 0;
                }
                udp.send_all(&control).await;
                1
            }
        }
    }

    /// Sends the replies of a stored batch; true when the write failed.
    pub async fn done(&mut self, w: Written, udp: &mut BatchSocket) -> bool {
        let (held, batches, result) = w;
        self.in_flight = self.in_flight.saturating_sub(batches);
        udp.send_all(&held).await;
        match result {
            Ok(()) => false,
            Err(e) => {
                tracing::error!(error = %e, "could not store leases (disk full?); serving on, leases kept in memory");
                true
            }
        }
    }

    /// Lets the last writes land (and their replies go) and stops the task.
    pub async fn finish(self, udp: &mut BatchSocket) {
        let Self {
            jobs,
            mut written,
            task,
            ..
        } = self;
        drop(jobs);
        while let Some((held, _, result)) = written.recv().await {
            if let Err(e) = result {
                tracing::error!(error = %e, "could not store the last leases");
            }
            udp.send_all(&held).await;
        }
        let _ = task.await;
    }
}
