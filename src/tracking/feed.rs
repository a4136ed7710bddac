//! The feed's tail: one task per server reads newly committed events from the store, in order,
//! and hands each to the live streams of this server that want it (see [`super::hub`]).
//!
//! It wakes when this server's writer commits, when another server commits (PostgreSQL
//! `NOTIFY`), and on a poll interval as a backstop (the only way SQLite processes sharing a
//! file learn of each other's events). Event numbers are gapless and become visible in order, so
//! reading everything above the last number seen never skips an event.
//!
//! Streams that are behind share their reads: the last events are kept in memory once for all of
//! them, and older ones are read from the database a page at a time into a small cache, so many
//! streams resuming from the same place cost one read of each page. A stream with a narrower
//! filter (a team, a recorder, a province) reads only its own events instead.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OnceCell, watch};
use tokio::task::JoinHandle;

use super::hub::{Hub, Subscription};
use crate::domain::Error;
use crate::domain::event::{EventFilter, FeedEvent};
use crate::store::{Announcements, Store};

/// How the tail reads and fans out.
#[derive(Debug, Clone, Copy)]
pub struct FeedConfig {
    /// How often the tail looks for events it was not told of.
    pub poll_interval: Duration,
    /// The last events kept in memory for streams that fell behind; a stream further behind
    /// reads from the database instead.
    pub recent_events: usize,
    /// Events queued for one stream before it counts as fallen behind.
    pub stream_queue: usize,
    /// Pages of older events kept for streams reading from the database.
    pub cached_pages: usize,
    /// Events read per query, and the size of a cached page.
    pub page_size: u32,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            recent_events: 4096,
            stream_queue: 256,
            cached_pages: 16,
            page_size: 500,
        }
    }
}

/// This server's view of the event feed. Cloning it shares the view.
#[derive(Clone)]
pub struct Feed {
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    hub: Arc<Hub>,
    pages: Arc<Pages>,
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
        let hub = Arc::new(Hub::new(start, config.stream_queue, config.recent_events));
        let wake = Arc::new(Notify::new());
        let announcements = Announcements::default();
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(tail(
            store.clone(),
            wake.clone(),
            announcements.clone(),
            hub.clone(),
            config.poll_interval,
            config.page_size.max(1),
            stop_rx.clone(),
        ))];
        if let Some(listener) = store.spawn_event_listener(announcements, stop_rx) {
            tasks.push(listener);
        }
        let pages = Arc::new(Pages {
            store: store.clone(),
            capacity: config.cached_pages,
            size: config.page_size.max(1),
            cache: Mutex::default(),
            reads: AtomicU64::new(0),
        });
        Ok((
            Self {
                store,
                wake,
                hub,
                pages,
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
        self.hub.head()
    }

    /// The live streams of this server.
    pub fn streams(&self) -> usize {
        self.hub.subscribers()
    }

    /// Subscribes a stream that wants the events passing `filter`.
    pub(crate) fn subscribe(&self, filter: EventFilter) -> Subscription {
        self.hub.subscribe(filter)
    }

    /// The store the feed reads.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// How many pages of older events were read from the database for streams behind: once
    /// each, however many streams needed one (as long as it stayed cached).
    pub fn pages_read(&self) -> u64 {
        self.pages.reads.load(Ordering::Relaxed)
    }

    /// The stored events after `cursor` passing `filter`, from one page of the feed: returns
    /// them and the number up to which the stream is then complete (at most `head`).
    pub(crate) async fn stored(
        &self,
        filter: &EventFilter,
        cursor: i64,
        head: i64,
    ) -> Result<(Vec<Arc<FeedEvent>>, i64), Error> {
        self.pages.read(filter, cursor, head).await
    }
}

/// Pages of the feed read from the database, each read once for every stream that needs it.
struct Pages {
    store: Arc<dyn Store>,
    capacity: usize,
    size: u32,
    reads: AtomicU64,
    cache: Mutex<Cached>,
}

/// The cached pages by number, and their numbers from the oldest cached.
#[derive(Default)]
struct Cached {
    pages: HashMap<i64, Arc<Page>>,
    order: VecDeque<i64>,
}

type Page = OnceCell<Arc<[Arc<FeedEvent>]>>;

impl Pages {
    async fn read(
        &self,
        filter: &EventFilter,
        cursor: i64,
        head: i64,
    ) -> Result<(Vec<Arc<FeedEvent>>, i64), Error> {
        let size = i64::from(self.size);
        let number = cursor / size;
        let last = (number + 1) * size;
        // Only a stream that wants (nearly) every event shares pages of the whole feed. A
        // stream of one team, one recorder, one province or one county reads just its own
        // events: a page of the whole feed would bring it hundreds of events to find a few, and
        // many such streams at different places would each read every page. So does a stream
        // whose page is still filling, or when nothing is cached.
        let selective = filter.team_id.is_some()
            || filter.recorded_by.is_some()
            || filter.province.is_some()
            || filter.county.is_some();
        if selective || last > head || self.capacity == 0 {
            let events = self.store.events(filter, cursor, head, self.size).await?;
            let complete = events.len() < self.size as usize;
            let upto = match events.last() {
                Some(event) if !complete => event.sequence,
                _ => head,
            };
            return Ok((events.into_iter().map(Arc::new).collect(), upto));
        }
        let page = self.page(number);
        let events = page
            .get_or_try_init(|| async {
                self.reads.fetch_add(1, Ordering::Relaxed);
                let events = self
                    .store
                    .events(&EventFilter::default(), last - size, last, self.size)
                    .await?;
                Ok::<_, Error>(events.into_iter().map(Arc::new).collect())
            })
            .await?;
        let passing = events
            .iter()
            .filter(|event| event.sequence > cursor && filter.matches(event))
            .cloned()
            .collect();
        Ok((passing, last))
    }

    /// The cached page `number`, made empty (to be read once) when it is not cached.
    fn page(&self, number: i64) -> Arc<Page> {
        let mut guard = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Cached { pages, order } = &mut *guard;
        if let Some(page) = pages.get(&number) {
            return page.clone();
        }
        while order.len() >= self.capacity {
            match order.pop_front() {
                Some(oldest) => pages.remove(&oldest),
                None => break,
            };
        }
        let page = Arc::new(Page::new());
        pages.insert(number, page.clone());
        order.push_back(number);
        page
    }
}

/// Reads new events and hands them out: when this server's writer pokes `wake` after a commit,
/// when the store's listener announces events past those handed out (another server's, or
/// this one's told after the writer's poke was read: not read twice), and every
/// `poll_interval`.
async fn tail(
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    announcements: Announcements,
    hub: Arc<Hub>,
    poll_interval: Duration,
    page: u32,
    mut stop: watch::Receiver<bool>,
) {
    let everything = EventFilter::default();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = wake.notified() => {}
            _ = announcements.told() => {
                if announcements.take() <= hub.head() {
                    continue;
                }
            }
            _ = tokio::time::sleep(poll_interval) => {}
        }
        loop {
            match store.events(&everything, hub.head(), i64::MAX, page).await {
                Ok(events) => {
                    let full = events.len() == page as usize;
                    hub.publish(events);
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
    hub.close();
}
