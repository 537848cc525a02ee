//! Reader connections: WAL lets several readers run beside each other and
//! beside the writer, so checks from several threads scale with cores.
//!
//! A small fixed set of connections, opened on first use (a command that
//! never reads opens none). A read takes the first free one; when all are
//! busy it waits for one, chosen round-robin.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use crate::error::{Error, Result};
use crate::store::{Db, Store};

pub(super) struct Readers {
    path: PathBuf,
    slots: Vec<Mutex<Option<Store>>>,
    next: AtomicUsize,
}

impl Readers {
    /// One connection per core, at least 2 and at most 8, to the file the
    /// writer opened (by its absolute path, so a later change of working
    /// directory does not matter).
    pub(super) fn new(path: &std::path::Path) -> Self {
        let path: PathBuf = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let n = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
        Readers {
            path,
            slots: (0..n).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// How many connections the pool holds at most.
    pub(super) fn size(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn read<T>(&self, f: impl FnOnce(Db<'_>) -> Result<T>) -> Result<T> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
        for i in 0..n {
            let Some(slot) = self.slots.get((start + i) % n) else {
                continue;
            };
            match slot.try_lock() {
                Ok(guard) => return self.run(guard, f),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Poisoned(_)) => return Err(Error::Poisoned),
            }
        }
        let slot = self.slots.get(start).ok_or(Error::Poisoned)?;
        let guard = slot.lock().map_err(|_| Error::Poisoned)?;
        self.run(guard, f)
    }

    fn run<T>(
        &self,
        mut guard: MutexGuard<'_, Option<Store>>,
        f: impl FnOnce(Db<'_>) -> Result<T>,
    ) -> Result<T> {
        if guard.is_none() {
            *guard = Some(Store::open_reader(&self.path)?);
        }
        match guard.as_mut() {
            Some(store) => store.read(f),
            None => Err(Error::Poisoned),
        }
    }
}
