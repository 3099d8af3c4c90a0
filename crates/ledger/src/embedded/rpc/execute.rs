//! Where `eth_call` and `eth_estimateGas` run: a few blocking threads, never
//! the async workers that also serve the broker's clients.
//!
//! revm has no wall-clock limit, so the gas cap is what bounds one
//! execution (docs/ledger.md gives the measured worst case). The time
//! limit bounds what a client waits for: once it passes, the client gets a
//! JSON-RPC error and the result is discarded when it arrives. The work
//! keeps its slot until it ends, so however many clients time out, at most
//! `slots` executions run at once and the rest queue for a slot — within
//! their own time limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::methods::RpcError;

pub(super) struct CallPool {
    slots: Arc<Semaphore>,
    timeout: Duration,
}

impl CallPool {
    pub fn new(slots: usize, timeout: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            timeout,
        }
    }

    /// Runs `work(deadline)` on a blocking thread once a slot is free; an
    /// error if the slot or the result is not there by the deadline.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(Instant) -> T + Send + 'static,
    ) -> Result<T, RpcError> {
        let deadline = Instant::now() + self.timeout;
        let tokio_deadline = tokio::time::Instant::from_std(deadline);
        let permit =
            match tokio::time::timeout_at(tokio_deadline, self.slots.clone().acquire_owned()).await
            {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => return Err(RpcError::server("the node is shutting down")),
                Err(_) => return Err(self.timed_out("waiting for an execution slot")),
            };
        let task = tokio::task::spawn_blocking(move || {
            let _slot = permit;
            work(deadline)
        });
        match tokio::time::timeout_at(tokio_deadline, task).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(RpcError::server(format!("execution failed: {e}"))),
            Err(_) => Err(self.timed_out("executing")),
        }
    }

    pub fn timed_out(&self, while_: &str) -> RpcError {
        RpcError::server(format!(
            "execution timed out after {} ms ({while_}; the limit is ledger_rpc_call_timeout_ms)",
            self.timeout.as_millis()
        ))
    }
}
