//! Where authentication work runs: a fixed number of workers (argon2
//! password checks are deliberately slow, handshakes sign and open keys)
//! and a bounded queue in front of them.
//!
//! Before a client is authenticated it must not be able to buy more than
//! its share of the machine: without a bound, a flood of CONNECTs with bad
//! passwords would start hundreds of blocking threads hashing at once and
//! starve every connected client. With it, at most `workers` steps run at
//! a time, at most `queue` wait, and one more is refused at once with
//! CONNACK 0x89 Server busy.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

/// Why an authentication step did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolError {
    /// Every worker is busy and the queue is full.
    Busy,
    /// The step panicked.
    Failed,
}

pub struct AuthPool {
    workers: Semaphore,
    worker_count: usize,
    /// Steps admitted: running plus waiting.
    admitted: AtomicUsize,
    queue: usize,
}

/// Gives the admission back when the step ends or its caller goes away.
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AuthPool {
    pub fn new(workers: usize, queue: usize) -> AuthPool {
        let workers = workers.max(1);
        AuthPool {
            workers: Semaphore::new(workers),
            worker_count: workers,
            admitted: AtomicUsize::new(0),
            queue,
        }
    }

    /// One worker per CPU core.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// Runs `f` on a worker thread, waiting for one if all are busy, unless
    /// the queue is already full.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.worker_count + self.queue {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(PoolError::Busy);
        }
        let _admission = Admission(&self.admitted);
        let _permit = self
            .workers
            .acquire()
            .await
            .map_err(|_| PoolError::Failed)?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| PoolError::Failed)
    }

    /// Steps running or waiting now.
    pub fn load(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_at_most_workers_at_once_and_refuses_beyond_the_queue() {
        let pool = Arc::new(AuthPool::new(2, 3));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(parking_lot::Mutex::new(release_rx));
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (pool, running, peak, rx) = (
                pool.clone(),
                running.clone(),
                peak.clone(),
                release_rx.clone(),
            );
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    let _ = rx.lock().recv();
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        // Five admitted (2 running, 3 waiting): the sixth is refused.
        while pool.load() < 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pool.run(|| ()).await, Err(PoolError::Busy));
        for _ in 0..5 {
            release_tx.send(()).unwrap();
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(()));
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(pool.load(), 0);
        assert_eq!(pool.run(|| 7).await, Ok(7));
    }
}
