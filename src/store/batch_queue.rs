//! Requests written together: a group commit.
//!
//! Executed one by one, each small write (a create, a run claim, a hold) costs a round trip, a
//! statement and a commit. A [`BatchQueue`] collects whatever requests arrive while its workers
//! are busy and hands each worker what has queued (up to a batch's size) as one batch: a lone
//! request goes out at once (nothing waits for a batch to fill), and under load many share a
//! statement and a commit. Several workers take turns, so that one batch fills while another is
//! written.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

/// The queue's workers have stopped (the process is ending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {0} queue has stopped")]
pub struct Stopped(pub &'static str);

/// A request and where its answer goes.
pub type Asked<T, A> = (T, oneshot::Sender<A>);

/// Items queued for a batch writer.
#[derive(Debug)]
pub struct BatchQueue<Q> {
    name: &'static str,
    sender: mpsc::UnboundedSender<Q>,
}

impl<Q> Clone for BatchQueue<Q> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            sender: self.sender.clone(),
        }
    }
}

impl<Q: Send + 'static> BatchQueue<Q> {
    /// Starts `workers` tasks on the current runtime, each writing with `write` the batches of
    /// up to `max_batch` items it takes from the queue. `name` says what the queue holds, in
    /// errors.
    pub fn start<W, F>(name: &'static str, workers: usize, max_batch: usize, write: W) -> Self
    where
        W: Fn(Vec<Q>) -> F + Clone + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let (sender, receiver) = mpsc::unbounded_channel();
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..workers {
            let receiver = Arc::clone(&receiver);
            let write = write.clone();
            tokio::spawn(async move {
                let mut batch = Vec::with_capacity(max_batch);
                loop {
                    // The lock is held only while taking a batch: the other workers take the
                    // next while this one writes.
                    let taken = receiver.lock().await.recv_many(&mut batch, max_batch).await;
                    if taken == 0 {
                        return;
                    }
                    write(std::mem::take(&mut batch)).await;
                }
            });
        }
        Self { name, sender }
    }

    /// Queues `item` for the next batch.
    ///
    /// # Errors
    /// [`Stopped`] when the workers are gone.
    pub fn push(&self, item: Q) -> Result<(), Stopped> {
        self.sender.send(item).map_err(|_| Stopped(self.name))
    }
}

impl<T: Send + 'static, A: Send + 'static> BatchQueue<Asked<T, A>> {
    /// Queues `request` and waits for its batch's answer to it.
    ///
    /// # Errors
    /// [`Stopped`] when the workers are gone, or one dropped the request unanswered.
    pub async fn ask(&self, request: T) -> Result<A, Stopped> {
        let (answer, answered) = oneshot::channel();
        self.push((request, answer))?;
        answered.await.map_err(|_| Stopped(self.name))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Requests queued while a batch is written go out together in the next, each answered.
    #[tokio::test]
    async fn requests_queued_together_share_a_batch_and_each_gets_its_answer() {
        let batches = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&batches);
        let queue: BatchQueue<Asked<u32, u32>> =
            BatchQueue::start("test", 1, 100, move |batch: Vec<Asked<u32, u32>>| {
                let counted = Arc::clone(&counted);
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    for (request, answer) in batch {
                        let _ = answer.send(request * 2);
                    }
                }
            });
        let answers = futures_util::future::join_all((0..50).map(|n| queue.ask(n))).await;
        let answers: Vec<u32> = answers.into_iter().map(|a| a.expect("answered")).collect();
        assert_eq!(answers, (0..50).map(|n| n * 2).collect::<Vec<_>>());
        assert!(
            batches.load(Ordering::SeqCst) < 50,
            "every request had its own batch"
        );
    }
}
