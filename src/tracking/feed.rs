//! The feed's tail: one task per server reads newly committed events from the store, in order,
//! and hands each to every live stream of this server.
//!
//! It wakes when this server's writer commits, when another server commits (PostgreSQL
//! `NOTIFY`), and on a poll interval as a backstop (the only way SQLite processes sharing a
//! file learn of each other's events). Event numbers are gapless and become visible in order, so
//! reading everything above the last number seen never skips an event.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;

use crate::domain::Error;
use crate::domain::event::{EventFilter, FeedEvent};
use crate::store::Store;

/// How the tail reads and fans out.
#[derive(Debug, Clone, Copy)]
pub struct FeedConfig {
    /// How often the tail looks for events it was not told of.
    pub poll_interval: Duration,
    /// Events kept for streams that have not taken them yet; a stream further behind reads
    /// from the database instead.
    pub fan_out_capacity: usize,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            fan_out_capacity: 1024,
        }
    }
}

/// Events read per query.
pub(crate) const PAGE: u32 = 500;

/// This server's view of the event feed. Cloning it shares the view.
#[derive(Clone)]
pub struct Feed {
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    head: watch::Receiver<i64>,
    events: broadcast::Sender<Arc<FeedEvent>>,
}

/// Stops the feed's tasks.
pub struct FeedHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl FeedHandle {
    /// Stops the tail and the listener and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

impl Feed {
    /// Starts following the store's events from the last one committed.
    pub async fn start(
        store: Arc<dyn Store>,
        config: FeedConfig,
    ) -> Result<(Self, FeedHandle), Error> {
        let start = store.last_event().await?;
        let (head_tx, head) = watch::channel(start);
        let (events, _) = broadcast::channel(config.fan_out_capacity.max(16));
        let wake = Arc::new(Notify::new());
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(tail(
            store.clone(),
            wake.clone(),
            head_tx,
            events.clone(),
            config.poll_interval,
            stop_rx.clone(),
        ))];
        if let Some(listener) = store.spawn_event_listener(wake.clone(), stop_rx) {
            tasks.push(listener);
        }
        Ok((
            Self {
                store,
                wake,
                head,
                events,
            },
            FeedHandle { stop, tasks },
        ))
    }

    /// What to poke when events were committed.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The number of the last event the tail has handed out.
    pub fn head(&self) -> i64 {
        *self.head.borrow()
    }

    /// Receives every event the tail hands out from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FeedEvent>> {
        self.events.subscribe()
    }

    /// The store the feed reads.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

async fn tail(
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    head: watch::Sender<i64>,
    events: broadcast::Sender<Arc<FeedEvent>>,
    poll_interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let everything = EventFilter::default();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(poll_interval) => {}
        }
        loop {
            let after = *head.borrow();
            match store.events(&everything, after, i64::MAX, PAGE).await {
                Ok(page) => {
                    let full = page.len() == PAGE as usize;
                    for event in page {
                        // The head moves before the event is handed out: a stream that reads
                        // the head and then its backlog from the database has then either read
                        // the event there or will receive it here (and skip it as seen).
                        head.send_replace(event.sequence);
                        let _ = events.send(Arc::new(event));
                    }
                    if !full {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot read new events; retrying");
                    break;
                }
            }
        }
    }
}
