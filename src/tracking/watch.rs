//! One watch stream: the events after the client's sequence number that pass its filter,
//! replayed from the database and then followed live, each exactly once and in order.
//!
//! The stream keeps a cursor: the number of the last event it has examined, sent or filtered
//! out. It reads its backlog from the database up to the feed's head, then takes events from
//! the feed's fan-out. An event at or below the cursor is skipped; an event further ahead than
//! the next number means the stream missed some (it fell behind the fan-out), and it goes back
//! to the database from its cursor. Nothing is buffered beyond a small channel per stream: a
//! client that does not read for `stall_timeout` is told it fell behind and where to resume.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::feed::{Feed, PAGE};
use crate::clock::Clock;
use crate::domain::Error;
use crate::domain::event::{EventFilter, FeedEvent};

/// How streams replay, pace and bound themselves.
#[derive(Debug, Clone, Copy)]
pub struct WatchConfig {
    /// A heartbeat is sent after this long without a message.
    pub heartbeat: Duration,
    /// The most events a stream replays; an older cursor is refused.
    pub max_replay: i64,
    /// Messages queued for one client.
    pub buffer: usize,
    /// How long a client may leave its queue full before it is told it fell behind.
    pub stall_timeout: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            max_replay: 100_000,
            buffer: 64,
            stall_timeout: Duration::from_secs(30),
        }
    }
}

/// One message of a stream.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchItem {
    /// An event that passes the filter.
    Event(Arc<FeedEvent>),
    /// Nothing new passed the filter up to `sequence`; the stream is alive.
    Heartbeat {
        /// Every passing event up to this number was sent.
        sequence: i64,
        /// The server's time.
        at: DateTime<Utc>,
    },
}

/// Why a stream ends (when the client did not end it).
#[derive(Debug)]
pub enum WatchEnd {
    /// The cursor is further back than the server replays.
    CursorTooOld {
        /// The cursor asked for.
        after: i64,
        /// The oldest cursor the server replays from.
        oldest: i64,
    },
    /// The cursor is ahead of every committed event.
    CursorAhead {
        /// The cursor asked for.
        after: i64,
        /// The last committed event.
        last: i64,
    },
    /// The client left its queue full too long.
    FellBehind {
        /// Where to resume.
        resume_after: i64,
    },
    /// The server is shutting down.
    ShuttingDown {
        /// Where to resume.
        resume_after: i64,
    },
    /// The database failed.
    Store(Error),
}

/// A running stream: its messages, then, if the server ended it, why.
pub struct Watch {
    /// The messages, in order.
    pub items: mpsc::Receiver<WatchItem>,
    /// Why the server ended the stream; dropped unanswered when the client ended it.
    pub end: oneshot::Receiver<WatchEnd>,
}

/// Starts a stream of the events after `after` (or from now, when `None`) passing `filter`.
pub async fn start(
    feed: &Feed,
    filter: EventFilter,
    after: Option<i64>,
    config: WatchConfig,
    clock: Clock,
    shutdown: watch::Receiver<bool>,
) -> Result<Watch, WatchEnd> {
    // Subscribed before anything is read, so no event falls between the backlog and the live feed.
    let live = feed.subscribe();
    let last = feed.store().last_event().await.map_err(WatchEnd::Store)?;
    let after = after.unwrap_or(last);
    if after > last {
        return Err(WatchEnd::CursorAhead { after, last });
    }
    let oldest = (last - config.max_replay).max(0);
    if after < oldest {
        return Err(WatchEnd::CursorTooOld { after, oldest });
    }
    let (items_tx, items) = mpsc::channel(config.buffer.max(1));
    let (end_tx, end) = oneshot::channel();
    let stream = Stream {
        feed: feed.clone(),
        filter,
        cursor: after,
        out: items_tx,
        config,
        clock,
        last_sent: Instant::now(),
    };
    // Counted before the stream is handed over, and for as long as its task runs.
    let open = OpenStream::counted();
    tokio::spawn(async move {
        let _open = open;
        if let Some(reason) = stream.run(live, shutdown).await {
            let _ = end_tx.send(reason);
        }
    });
    Ok(Watch { items, end })
}

/// Counts a stream in [`crate::metrics::STREAMS_OPEN`] while it runs, however it ends.
struct OpenStream;

impl OpenStream {
    fn counted() -> Self {
        metrics::gauge!(crate::metrics::STREAMS_OPEN).increment(1.0);
        Self
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::STREAMS_OPEN).decrement(1.0);
    }
}

struct Stream {
    feed: Feed,
    filter: EventFilter,
    cursor: i64,
    out: mpsc::Sender<WatchItem>,
    config: WatchConfig,
    clock: Clock,
    last_sent: Instant,
}

/// What sending a message came to.
enum Sent {
    Ok,
    ClientGone,
    Stalled,
}

impl Stream {
    /// Runs until the client goes (`None`) or the server ends the stream.
    async fn run(
        mut self,
        mut live: broadcast::Receiver<Arc<FeedEvent>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Option<WatchEnd> {
        let mut catching_up = true;
        loop {
            if *shutdown.borrow() {
                return Some(WatchEnd::ShuttingDown {
                    resume_after: self.cursor,
                });
            }
            if catching_up {
                match self.catch_up().await {
                    Ok(Sent::Ok) => catching_up = false,
                    Ok(Sent::ClientGone) => return None,
                    Ok(Sent::Stalled) => return Some(self.fell_behind()),
                    Err(error) => return Some(WatchEnd::Store(error)),
                }
            }
            let heartbeat_due = self.last_sent + self.config.heartbeat;
            tokio::select! {
                received = live.recv() => match received {
                    Ok(event) if event.sequence <= self.cursor => {}
                    Ok(event) if event.sequence == self.cursor + 1 => {
                        let sequence = event.sequence;
                        // The cursor moves only once the event is queued (or filtered out): a
                        // client told to resume from it must not skip an event it never got.
                        if self.filter.matches(&event) {
                            match self.send(WatchItem::Event(event)).await {
                                Sent::Ok => {}
                                Sent::ClientGone => return None,
                                Sent::Stalled => return Some(self.fell_behind()),
                            }
                        }
                        self.cursor = sequence;
                    }
                    // A gap: this stream was too slow for the fan-out. The database has it all.
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => catching_up = true,
                    Err(broadcast::error::RecvError::Closed) => {
                        return Some(WatchEnd::ShuttingDown { resume_after: self.cursor });
                    }
                },
                _ = tokio::time::sleep_until(heartbeat_due) => {
                    let beat = WatchItem::Heartbeat { sequence: self.cursor, at: self.clock.now() };
                    // A full queue needs no heartbeat: the client has messages to read.
                    match self.out.try_send(beat) {
                        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => self.last_sent = Instant::now(),
                        Err(mpsc::error::TrySendError::Closed(_)) => return None,
                    }
                }
                _ = shutdown.changed() => {}
                _ = self.out.closed() => return None,
            }
        }
    }

    /// Sends every passing event from the cursor up to the feed's head, from the database.
    async fn catch_up(&mut self) -> Result<Sent, Error> {
        let head = self.feed.head();
        while self.cursor < head {
            let page = self
                .feed
                .store()
                .events(&self.filter, self.cursor, head, PAGE)
                .await?;
            let complete = page.len() < PAGE as usize;
            for event in page {
                let sequence = event.sequence;
                match self.send(WatchItem::Event(Arc::new(event))).await {
                    Sent::Ok => self.cursor = sequence,
                    other => return Ok(other),
                }
            }
            if complete {
                // Every passing event up to the head was sent; the rest were filtered out.
                self.cursor = head;
            }
        }
        Ok(Sent::Ok)
    }

    async fn send(&mut self, item: WatchItem) -> Sent {
        match tokio::time::timeout(self.config.stall_timeout, self.out.send(item)).await {
            Ok(Ok(())) => {
                self.last_sent = Instant::now();
                Sent::Ok
            }
            Ok(Err(_)) => Sent::ClientGone,
            Err(_) => Sent::Stalled,
        }
    }

    fn fell_behind(&self) -> WatchEnd {
        tracing::warn!(
            resume_after = self.cursor,
            "watch stream ended: the client left it unread past the stall timeout"
        );
        WatchEnd::FellBehind {
            resume_after: self.cursor,
        }
    }
}
