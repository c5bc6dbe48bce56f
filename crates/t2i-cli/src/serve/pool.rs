//! The bounded worker pool that runs generation off the async runtime: a
//! fixed number of OS threads take jobs from a queue of fixed capacity; a
//! full queue is refused at once (the handler answers 503 + Retry-After),
//! and a job whose request has already timed out is skipped.

use super::api::ApiError;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

type Job = Box<dyn FnOnce() + Send>;

/// Worker threads and their job queue.
pub struct Pool {
    tx: SyncSender<Job>,
    stats: Arc<Counters>,
}

/// What the pool has done since the start (`GET /api/health`).
#[derive(Default)]
struct Counters {
    /// Jobs accepted into the queue.
    accepted: AtomicU64,
    /// Jobs a worker finished (answered or skipped as too late).
    finished: AtomicU64,
    /// Jobs refused because the queue was full.
    refused: AtomicU64,
}

/// A snapshot of the pool's counters.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PoolStats {
    /// Jobs waiting or running now.
    pub in_flight: u64,
    pub finished: u64,
    /// Requests answered 503 because the queue was full.
    pub refused: u64,
}

fn worker(rx: Arc<Mutex<Receiver<Job>>>) {
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv()
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

impl Pool {
    /// `workers` threads; at most `queue` jobs wait beyond those running.
    pub fn new(workers: usize, queue: usize) -> std::io::Result<Pool> {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("t2i-worker-{i}"))
                .spawn(move || worker(rx))?;
        }
        Ok(Pool {
            tx,
            stats: Arc::default(),
        })
    }

    pub fn stats(&self) -> PoolStats {
        let finished = self.stats.finished.load(Ordering::Relaxed);
        PoolStats {
            in_flight: self
                .stats
                .accepted
                .load(Ordering::Relaxed)
                .saturating_sub(finished),
            finished,
            refused: self.stats.refused.load(Ordering::Relaxed),
        }
    }

    /// Runs `f` on a worker and waits for its answer until `deadline`.
    /// A full queue is `503`, a missed deadline `504`, a panic `500`.
    pub async fn run<T, F>(&self, deadline: Instant, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    {
        let (done, answer) = tokio::sync::oneshot::channel();
        let stats = self.stats.clone();
        let job: Job = Box::new(move || {
            let result = if Instant::now() >= deadline {
                Err(ApiError::timeout())
            } else {
                catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
                    Err(ApiError::internal("generation failed (internal error)"))
                })
            };
            stats.finished.fetch_add(1, Ordering::Relaxed);
            let _ = done.send(result);
        });
        // counted before the send so a fast worker never finishes more
        // jobs than were accepted
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.stats.accepted.fetch_sub(1, Ordering::Relaxed);
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::busy());
            }
            Err(TrySendError::Disconnected(_)) => {
                self.stats.accepted.fetch_sub(1, Ordering::Relaxed);
                return Err(ApiError::internal("the worker pool has stopped"));
            }
        }
        match tokio::time::timeout_at(deadline.into(), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ApiError::internal("generation failed (worker lost)")),
            Err(_) => Err(ApiError::timeout()),
        }
    }
}
