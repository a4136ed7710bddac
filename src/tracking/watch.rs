//! One watch stream: the events after the client's sequence number that pass its filter,
//! replayed and then followed live, each exactly once and in order.
//!
//! The stream keeps a cursor: the number of the last event it has examined, sent or filtered
//! out. It subscribes to the feed's hub, which offers it only the events its filter passes, and
//! starts by catching up from its cursor to the hub's head (from memory when the hub still holds
//! those events, from the database otherwise). When its queue overflowed the hub marks it lagged
//! and it catches up again the same way. An offered event at or below the cursor was already
//! sent while catching up and is skipped. Nothing is buffered beyond two small queues per
//! stream: a client that does not read for `stall_timeout` is told it fell behind and where to
//! resume.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::feed::Feed;
use super::hub::{Backlog, Subscription};
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

/// Which kind of stream this is, as its metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// `WatchCases`: a call centre's or supervisor's view.
    Cases,
    /// `StreamAssignments`: one team's device.
    Assignments,
}

impl StreamKind {
    /// The `kind` label of the stream metrics.
    pub fn label(self) -> &'static str {
        match self {
            StreamKind::Cases => "watch_cases",
            StreamKind::Assignments => "stream_assignments",
        }
    }
}

/// Starts a stream of the events after `after` (or from now, when `None`) passing `filter`.
pub async fn start(
    feed: &Feed,
    kind: StreamKind,
    filter: EventFilter,
    after: Option<i64>,
    config: WatchConfig,
    clock: Clock,
    shutdown: watch::Receiver<bool>,
) -> Result<Watch, WatchEnd> {
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
        live: feed.subscribe(filter),
        cursor: after,
        out: items_tx,
        config,
        clock,
        last_sent: Instant::now(),
        lag: metrics::histogram!(crate::metrics::STREAM_LAG, "kind" => kind.label()),
    };
    // Counted before the stream is handed over, and for as long as its task runs.
    let open = OpenStream::counted(kind);
    tokio::spawn(async move {
        let _open = open;
        if let Some(reason) = stream.run(shutdown).await {
            let _ = end_tx.send(reason);
        }
    });
    Ok(Watch { items, end })
}

/// Counts a stream in [`crate::metrics::STREAMS_OPEN`] while it runs, however it ends.
struct OpenStream(metrics::Gauge);

impl OpenStream {
    fn counted(kind: StreamKind) -> Self {
        let gauge = metrics::gauge!(crate::metrics::STREAMS_OPEN, "kind" => kind.label());
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

struct Stream {
    feed: Feed,
    /// The events the hub offers this stream, already filtered.
    live: Subscription,
    cursor: i64,
    out: mpsc::Sender<WatchItem>,
    config: WatchConfig,
    clock: Clock,
    last_sent: Instant,
    /// How far behind the feed's head each event was when it was queued for the client.
    lag: metrics::Histogram,
}

/// What sending a message came to.
enum Sent {
    Ok,
    ClientGone,
    Stalled,
}

impl Stream {
    /// Runs until the client goes (`None`) or the server ends the stream.
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Option<WatchEnd> {
        // A new subscription is offered nothing until it has caught up from its cursor.
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
                received = self.live.queue.recv() => match received {
                    Some(event) => match self.forward(event).await {
                        Sent::Ok => catching_up = self.live.lagged(),
                        Sent::ClientGone => return None,
                        Sent::Stalled => return Some(self.fell_behind()),
                    },
                    None => return Some(WatchEnd::ShuttingDown { resume_after: self.cursor }),
                },
                _ = tokio::time::sleep_until(heartbeat_due) => {
                    // Everything the hub offered up to the head it had reached is sent first,
                    // so the heartbeat's number is a place to resume from that misses nothing.
                    let head = self.live.head();
                    while let Ok(event) = self.live.queue.try_recv() {
                        match self.forward(event).await {
                            Sent::Ok => {}
                            Sent::ClientGone => return None,
                            Sent::Stalled => return Some(self.fell_behind()),
                        }
                    }
                    if self.live.lagged() {
                        catching_up = true;
                        continue;
                    }
                    self.cursor = self.cursor.max(head);
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

    /// Sends an event the hub offered, unless the stream already sent it while catching up.
    async fn forward(&mut self, event: Arc<FeedEvent>) -> Sent {
        if event.sequence <= self.cursor {
            return Sent::Ok;
        }
        let sequence = event.sequence;
        let sent = self.send(WatchItem::Event(event)).await;
        // The cursor moves only once the event is queued: a client told to resume from it
        // must not skip an event it never got.
        if let Sent::Ok = sent {
            self.cursor = sequence;
            self.lag.record((self.live.head() - sequence) as f64);
        }
        sent
    }

    /// Has the hub offer this stream its events again, and first sends every passing event
    /// from the cursor up to the head at that moment: from memory when the hub still holds
    /// them, from the database (a page at a time, shared with other streams) otherwise.
    async fn catch_up(&mut self) -> Result<Sent, Error> {
        let head = match self.live.rearm(self.cursor) {
            Backlog::Recent { events, head } => {
                for event in events {
                    match self.forward(event).await {
                        Sent::Ok => {}
                        other => return Ok(other),
                    }
                }
                head
            }
            Backlog::Stored { head } => {
                while self.cursor < head {
                    let (events, upto) = self
                        .feed
                        .stored(self.live.filter(), self.cursor, head)
                        .await?;
                    for event in events {
                        match self.forward(event).await {
                            Sent::Ok => {}
                            other => return Ok(other),
                        }
                    }
                    // Every passing event up to `upto` was sent; the rest were filtered out.
                    self.cursor = self.cursor.max(upto);
                }
                head
            }
        };
        self.cursor = self.cursor.max(head);
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
