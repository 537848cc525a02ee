//! Group commit: concurrent writes (ingests, and the two write steps of a
//! send) share one transaction and one fsync.

use std::sync::{Arc, Condvar, Mutex};

use super::Delivery;
use super::send::{Answer, Reserved};
use crate::error::{Error, Result};
use crate::event::{Event, IngestOutcome};
use crate::policy::SendRequest;

/// Group commit: concurrent [`Business::ingest`] calls, and the
/// reservations and completions of sends, are coalesced into one
/// transaction and one fsync: a send's writes never make a webhook wait
/// for a commit of its own.
///
/// Callers queue their event and wait on a slot of their own. The first
/// caller to find no leader leads: it gathers the queue, commits it (each
/// event in its own savepoint), fills every caller's slot, and hands
/// leadership to the first caller queued meanwhile. A caller returns only
/// after the transaction holding its event committed, so durability is that
/// of a single commit. As in LevelDB's writer queue, nobody polls.
#[derive(Default)]
pub(super) struct Committer {
    queue: Mutex<Queue>,
    /// Signalled when an event is queued (a gathering leader waits on it).
    arrived: Condvar,
}

#[derive(Default)]
struct Queue {
    pending: Vec<(Job, Arc<Slot>)>,
    leader: bool,
    /// A leader is waiting for `last_group` events to gather.
    gathering: bool,
    /// The size of the last group: how many callers are ingesting at once.
    last_group: usize,
}

pub(super) struct Job {
    pub(super) business: i64,
    pub(super) name: Arc<str>,
    pub(super) work: Work,
}

/// What a job writes.
pub(super) enum Work {
    /// An event.
    Ingest(Event),
    /// Decide a send and reserve its key.
    Reserve { request: SendRequest, key: String },
    /// Record the transport's answer for a reserved send.
    Complete { send: i64, answer: Answer },
}

/// What a job's write gave.
pub(super) enum Done {
    Ingest(IngestOutcome),
    Reserve(Reserved),
    Complete(Delivery),
}

/// Where a waiting caller learns its result, or that it leads next.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
}

#[derive(Default)]
enum SlotState {
    #[default]
    Waiting,
    Lead,
    Done(Result<Done>),
}

impl Slot {
    fn set(&self, state: SlotState) {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *s = state;
        self.ready.notify_one();
    }
}

/// How long a leader waits for the callers of the last group to queue
/// their next events. Only spent when the last group had several callers,
/// so a lone caller never waits; well below the fsync it saves.
const GATHER: std::time::Duration = std::time::Duration::from_micros(200);

/// Finishes a leader's turn even if the commit panicked: every slot of the
/// group gets an answer ([`Error::Poisoned`] if none was computed) and
/// leadership passes on, so no caller waits forever.
struct Turn<'a> {
    committer: &'a Committer,
    slots: Vec<Arc<Slot>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        for slot in self.slots.drain(..) {
            slot.set(SlotState::Done(Err(Error::Poisoned)));
        }
        let mut q = self
            .committer
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match q.pending.first() {
            Some((_, next)) => next.set(SlotState::Lead),
            None => q.leader = false,
        }
    }
}

impl Committer {
    /// Queues `job` and returns its result once its group committed.
    pub(super) fn submit(
        &self,
        job: Job,
        commit: impl Fn(&[Job]) -> Vec<Result<Done>>,
    ) -> Result<Done> {
        let mine = Arc::new(Slot::default());
        // No lock here is held across code that can panic; should one be
        // poisoned anyway, go on: a caller must never be left without an
        // answer or a queue without a leader.
        let mut q = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        q.pending.push((job, mine.clone()));
        if q.gathering && q.pending.len() >= q.last_group {
            // Wake the gathering leader once, when its group is complete.
            self.arrived.notify_one();
        }
        let lead = !q.leader;
        q.leader = true;
        drop(q);
        if !lead {
            let mut state = mine
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            loop {
                match std::mem::take(&mut *state) {
                    SlotState::Done(r) => return r,
                    SlotState::Lead => break,
                    SlotState::Waiting => {
                        state = mine
                            .ready
                            .wait(state)
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                    }
                }
            }
        }
        // Leading. Our own job is queued, so this group includes it.
        let mut q = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let target = q.last_group;
        if target > 1 && q.pending.len() < target {
            // Under concurrency, let the last group's callers catch up, so
            // one fsync covers as many events as there are callers.
            let deadline = std::time::Instant::now() + GATHER;
            q.gathering = true;
            while q.pending.len() < target {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                q = self
                    .arrived
                    .wait_timeout(q, left)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
            q.gathering = false;
        }
        let (jobs, slots): (Vec<Job>, Vec<Arc<Slot>>) =
            std::mem::take(&mut q.pending).into_iter().unzip();
        q.last_group = jobs.len();
        drop(q);
        let mut turn = Turn {
            committer: self,
            slots,
        };
        let results = commit(&jobs);
        let mut own = Err(Error::Poisoned);
        // Slots left without a result (never expected) stay in `turn` and
        // are answered by its drop.
        let answered = results.len().min(turn.slots.len());
        for (slot, r) in turn
            .slots
            .drain(..answered)
            .collect::<Vec<_>>()
            .into_iter()
            .zip(results)
        {
            if Arc::ptr_eq(&slot, &mine) {
                own = r;
            } else {
                slot.set(SlotState::Done(r));
            }
        }
        drop(turn);
        own
    }
}
