//! Where authentication work runs: a fixed set of worker threads (argon2
//! password checks are deliberately slow and take 19 MiB each; handshakes
//! sign, open keys and wait for durable replay counters) and a bounded
//! queue in front of them.
//!
//! Before a client is authenticated it must not be able to buy more than
//! its share of the machine: without a bound, a flood of CONNECTs with bad
//! passwords would start hundreds of blocking threads hashing at once,
//! starve every connected client and leave a malloc arena of freed argon2
//! memory behind in each. With it, at most `workers` steps run at a time,
//! on the same threads every time, at most `queue` wait, and one more is
//! refused at once with CONNACK 0x89 Server busy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Why an authentication step did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolError {
    /// Every worker is busy and the queue is full.
    Busy,
    /// The step panicked (or the pool is gone).
    Failed,
}

type Job = Box<dyn FnOnce() + Send>;

pub struct AuthPool {
    jobs: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    worker_count: usize,
    /// Steps admitted: running plus waiting.
    admitted: Arc<AtomicUsize>,
    queue: usize,
}

/// Gives the admission back when the step ends or its caller goes away.
struct Admission(Arc<AtomicUsize>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AuthPool {
    /// Starts `workers` threads.
    pub fn new(workers: usize, queue: usize) -> AuthPool {
        let workers = workers.max(1);
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ledgermq-auth-{i}"))
                .spawn(move || loop {
                    let job = rx.lock().recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // the pool was dropped
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start authentication worker {i}: {e}");
            }
        }
        AuthPool {
            jobs: Mutex::new(Some(tx)),
            worker_count: workers,
            admitted: Arc::new(AtomicUsize::new(0)),
            queue,
        }
    }

    /// One worker per CPU core.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// Runs `f` on a worker, waiting for one if all are busy, unless the
    /// queue is already full.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.worker_count + self.queue {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(PoolError::Busy);
        }
        let admission = Admission(self.admitted.clone());
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            // The admission ends when the step does, even if the caller
            // stopped waiting.
            drop(admission);
            if let Ok(out) = out {
                let _ = done.send(out);
            }
        });
        let sent = match &*self.jobs.lock() {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        };
        if !sent {
            return Err(PoolError::Failed);
        }
        result.await.map_err(|_| PoolError::Failed)
    }

    /// Steps running or waiting now.
    pub fn load(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }
}

impl Drop for AuthPool {
    fn drop(&mut self) {
        // Closing the channel lets the workers finish and exit.
        self.jobs.lock().take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_at_most_workers_at_once_and_refuses_beyond_the_queue() {
        let pool = Arc::new(AuthPool::new(2, 3));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
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
        // Both workers pick a job up (a loaded machine may start one late).
        while running.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
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

    #[tokio::test]
    async fn a_panicking_step_is_a_failure_not_a_lost_worker() {
        let pool = AuthPool::new(1, 1);
        let r: Result<(), _> = pool.run(|| panic!("step")).await;
        assert_eq!(r, Err(PoolError::Failed));
        assert_eq!(pool.run(|| 1).await, Ok(1));
        assert_eq!(pool.load(), 0);
    }
}
