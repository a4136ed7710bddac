//! The feed's fan-out: which live streams want an event, found by what they filter on, and the
//! most recent events, kept once for every stream that falls behind.
//!
//! A stream subscribes with its filter and is indexed by its most selective condition: its team,
//! else the subject whose cases it follows, else its province, else nothing (it wants every
//! event). An event is offered only to the streams indexed under its team, its recorder, its
//! province and the unindexed ones, and each of those checks its whole filter, so the work an
//! event costs grows with the streams that may want it, not with all that are open, and a stream
//! receives exactly what its filter (the caller's reach included) lets through.
//!
//! Each stream has a small queue. When it is full the stream is marked lagged and offered nothing
//! more until it catches up: from the recent events kept here when they reach back to its cursor,
//! from the database otherwise. Offering, marking and re-arming happen under one lock, and the
//! head moves under it after the event was offered, so a stream that re-arms and reads the head
//! gets every later event in its queue, and one that reads the head and then empties its queue
//! without having lagged has been offered every passing event up to that head.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::domain::event::{EventFilter, FeedEvent};

/// Live streams by what they filter on, and the recent events.
pub(crate) struct Hub {
    state: Mutex<State>,
    head: AtomicI64,
    queue: usize,
}

#[derive(Default)]
struct State {
    next_id: u64,
    subscribers: HashMap<u64, Subscriber>,
    by_team: HashMap<String, Vec<u64>>,
    by_recorder: HashMap<String, Vec<u64>>,
    by_province: HashMap<String, Vec<u64>>,
    everyone: Vec<u64>,
    recent: VecDeque<Arc<FeedEvent>>,
    recent_capacity: usize,
    closed: bool,
    /// Streams whose filter an event was checked against, over the hub's life.
    examined: u64,
}

struct Subscriber {
    filter: EventFilter,
    queue: mpsc::Sender<Arc<FeedEvent>>,
    lagged: Arc<AtomicBool>,
}

/// Where a stream is indexed: its most selective condition.
enum Key<'a> {
    Team(&'a str),
    Recorder(&'a str),
    Province(&'a str),
    Everyone,
}

impl<'a> Key<'a> {
    fn of(filter: &'a EventFilter) -> Self {
        if let Some(team) = &filter.team_id {
            Key::Team(team)
        } else if let Some(recorder) = &filter.recorded_by {
            Key::Recorder(recorder)
        } else if let Some(province) = &filter.province {
            Key::Province(province)
        } else {
            Key::Everyone
        }
    }
}

impl State {
    fn ids(&mut self, key: &Key<'_>) -> &mut Vec<u64> {
        match *key {
            Key::Team(team) => self.by_team.entry(team.to_owned()).or_default(),
            Key::Recorder(r) => self.by_recorder.entry(r.to_owned()).or_default(),
            Key::Province(p) => self.by_province.entry(p.to_owned()).or_default(),
            Key::Everyone => &mut self.everyone,
        }
    }

    fn unindex(&mut self, key: &Key<'_>, id: u64) {
        let (map, name) = match *key {
            Key::Team(team) => (&mut self.by_team, team),
            Key::Recorder(r) => (&mut self.by_recorder, r),
            Key::Province(p) => (&mut self.by_province, p),
            Key::Everyone => {
                self.everyone.retain(|&other| other != id);
                return;
            }
        };
        if let Some(ids) = map.get_mut(name) {
            ids.retain(|&other| other != id);
            if ids.is_empty() {
                map.remove(name);
            }
        }
    }

    /// Offers `event` to the streams that may want it.
    fn offer(&mut self, event: &Arc<FeedEvent>) {
        let State {
            subscribers,
            by_team,
            by_recorder,
            by_province,
            everyone,
            examined,
            ..
        } = self;
        // A crisis's event (no case) may be wanted by every stream of its province, or of the
        // country, but a team's: they are few, and such events rare.
        let notice: Vec<u64> = if event.case_id.is_none() {
            let provinces: Vec<&Vec<u64>> = if event.province.is_empty() {
                by_province.values().collect()
            } else {
                by_province.get(&event.province).into_iter().collect()
            };
            by_recorder
                .values()
                .chain(provinces)
                .flatten()
                .copied()
                .collect()
        } else {
            Vec::new()
        };
        let of_case = event.case_id.is_some();
        let team = event.team_id.as_deref().and_then(|team| by_team.get(team));
        let recorder = by_recorder.get(&event.recorded_by).filter(|_| of_case);
        let province = by_province.get(&event.province).filter(|_| of_case);
        let candidates = team
            .into_iter()
            .chain(recorder)
            .chain(province)
            .chain(std::iter::once(&*everyone))
            .flatten()
            .chain(&notice);
        for id in candidates {
            let Some(subscriber) = subscribers.get(id) else {
                continue;
            };
            *examined += 1;
            if subscriber.lagged.load(Ordering::Acquire) || !subscriber.filter.matches(event) {
                continue;
            }
            if let Err(mpsc::error::TrySendError::Full(_)) =
                subscriber.queue.try_send(event.clone())
            {
                subscriber.lagged.store(true, Ordering::Release);
            }
        }
    }

    fn remember(&mut self, event: Arc<FeedEvent>) {
        if self.recent_capacity == 0 {
            return;
        }
        if self.recent.len() == self.recent_capacity {
            self.recent.pop_front();
        }
        self.recent.push_back(event);
    }

    /// The recent events after `cursor` passing `filter`, or `None` when the recent events no
    /// longer reach back to `cursor`.
    fn recent_after(
        &self,
        cursor: i64,
        head: i64,
        filter: &EventFilter,
    ) -> Option<Vec<Arc<FeedEvent>>> {
        if cursor >= head {
            return Some(Vec::new());
        }
        let first = self.recent.front()?.sequence;
        if first > cursor + 1 {
            return None;
        }
        // The recent events are consecutive, so the cursor's successor is found by arithmetic.
        let skip = usize::try_from(cursor + 1 - first).unwrap_or(usize::MAX);
        Some(
            self.recent
                .iter()
                .skip(skip)
                .filter(|event| filter.matches(event))
                .cloned()
                .collect(),
        )
    }
}

impl Hub {
    /// A hub whose streams queue up to `queue` events each and that keeps the last `recent`
    /// events, starting at the feed's `head`.
    pub(crate) fn new(head: i64, queue: usize, recent: usize) -> Self {
        Self {
            state: Mutex::new(State {
                recent_capacity: recent,
                ..State::default()
            }),
            head: AtomicI64::new(head),
            queue: queue.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the index whole (every step is a single insert
        // or remove), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The number of the last event offered to the streams.
    pub(crate) fn head(&self) -> i64 {
        self.head.load(Ordering::Acquire)
    }

    /// Offers each event, in order, to the streams that want it, and moves the head past it.
    pub(crate) fn publish(&self, events: impl IntoIterator<Item = FeedEvent>) {
        let mut state = self.lock();
        for event in events {
            let event = Arc::new(event);
            let sequence = event.sequence;
            state.offer(&event);
            state.remember(event);
            self.head.store(sequence, Ordering::Release);
        }
    }

    /// Ends every stream's queue: the feed has stopped.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.subscribers.clear();
        state.by_team.clear();
        state.by_recorder.clear();
        state.by_province.clear();
        state.everyone.clear();
    }

    /// Subscribes a stream with `filter`. It starts lagged: it is offered nothing until it
    /// catches up and re-arms.
    pub(crate) fn subscribe(self: &Arc<Self>, filter: EventFilter) -> Subscription {
        let (sender, queue) = mpsc::channel(self.queue);
        let lagged = Arc::new(AtomicBool::new(true));
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        if !state.closed {
            state.ids(&Key::of(&filter)).push(id);
            state.subscribers.insert(
                id,
                Subscriber {
                    filter: filter.clone(),
                    queue: sender,
                    lagged: lagged.clone(),
                },
            );
        }
        drop(state);
        Subscription {
            hub: self.clone(),
            id,
            filter,
            queue,
            lagged,
        }
    }

    /// The streams subscribed now.
    pub(crate) fn subscribers(&self) -> usize {
        self.lock().subscribers.len()
    }

    /// How many times a stream's filter was checked against an event, over the hub's life.
    #[cfg(test)]
    pub(crate) fn examined(&self) -> u64 {
        self.lock().examined
    }
}

/// One stream's place in the hub; dropping it unsubscribes.
pub(crate) struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    filter: EventFilter,
    /// The passing events offered to this stream, in order.
    pub(crate) queue: mpsc::Receiver<Arc<FeedEvent>>,
    lagged: Arc<AtomicBool>,
}

/// What a stream re-arming has to send before it follows its queue again.
pub(crate) enum Backlog {
    /// These events, all from memory: the stream is then complete up to `head`.
    Recent {
        events: Vec<Arc<FeedEvent>>,
        head: i64,
    },
    /// Everything after the cursor up to `head`, from the database.
    Stored { head: i64 },
}

impl Subscription {
    /// The stream's filter.
    pub(crate) fn filter(&self) -> &EventFilter {
        &self.filter
    }

    /// The number of the last event offered to the streams.
    pub(crate) fn head(&self) -> i64 {
        self.hub.head()
    }

    /// True when an event this stream wants found its queue full: the queue's events are
    /// still good, but what follows them must be read again.
    pub(crate) fn lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }

    /// Has the hub offer this stream every event from now on, and says what it has to send
    /// first to be complete from `cursor` up to the head at this moment.
    pub(crate) fn rearm(&self, cursor: i64) -> Backlog {
        let state = self.hub.lock();
        self.lagged.store(false, Ordering::Release);
        let head = self.hub.head();
        match state.recent_after(cursor, head, &self.filter) {
            Some(events) => Backlog::Recent { events, head },
            None => Backlog::Stored { head },
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        if state.subscribers.remove(&self.id).is_some() {
            state.unindex(&Key::of(&self.filter), self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::domain::event::EventKind;
    use crate::domain::types::{Line, Priority};

    fn event(sequence: i64, province: &str, team: Option<&str>) -> FeedEvent {
        FeedEvent {
            sequence,
            case_id: Some(Uuid::nil()),
            kind: EventKind::CaseRecorded,
            actor: "operator:1".into(),
            occurred_at: Utc::now(),
            reason: None,
            data: "{}".into(),
            line: Some(Line::Emergency123),
            province: province.into(),
            county: "Tehran".into(),
            priority: Some(Priority::P2Priority),
            team_id: team.map(Into::into),
            recorded_by: "op-1".into(),
        }
    }

    fn drain(subscription: &mut Subscription) -> Vec<i64> {
        let mut got = Vec::new();
        while let Ok(event) = subscription.queue.try_recv() {
            got.push(event.sequence);
        }
        got
    }

    fn province(code: &str) -> EventFilter {
        EventFilter {
            province: Some(code.into()),
            ..EventFilter::default()
        }
    }

    /// A crisis's event: no case, line or priority; `province` empty for the whole country.
    fn crisis_event(sequence: i64, province: &str) -> FeedEvent {
        FeedEvent {
            case_id: None,
            kind: EventKind::CrisisDeclared,
            line: None,
            priority: None,
            county: String::new(),
            recorded_by: String::new(),
            team_id: None,
            ..event(sequence, province, None)
        }
    }

    #[test]
    fn a_crisis_event_reaches_every_stream_of_its_province_but_a_teams() {
        let hub = Arc::new(Hub::new(0, 16, 16));
        let mut ilam = hub.subscribe(province("IR-16"));
        let mut tehran = hub.subscribe(province("IR-23"));
        let mut urgent_ilam_county = hub.subscribe(EventFilter {
            province: Some("IR-16".into()),
            county: Some("Ilam".into()),
            priority: Some(Priority::P0Immediate),
            line: Some(Line::Emergency123),
            ..EventFilter::default()
        });
        let mut counsellor = hub.subscribe(EventFilter {
            recorded_by: Some("counsellor-9".into()),
            ..EventFilter::default()
        });
        let mut team = hub.subscribe(EventFilter {
            team_id: Some("T-1".into()),
            ..EventFilter::default()
        });
        let mut everything = hub.subscribe(EventFilter::default());
        for s in [
            &ilam,
            &tehran,
            &urgent_ilam_county,
            &counsellor,
            &team,
            &everything,
        ] {
            s.rearm(0);
        }
        hub.publish([
            crisis_event(1, "IR-16"),
            crisis_event(2, ""),
            event(3, "IR-16", None),
        ]);
        assert_eq!(drain(&mut ilam), [1, 2, 3]);
        assert_eq!(drain(&mut tehran), [2]);
        assert_eq!(drain(&mut urgent_ilam_county), [1, 2]);
        assert_eq!(drain(&mut counsellor), [1, 2]);
        assert_eq!(drain(&mut team), Vec::<i64>::new());
        assert_eq!(drain(&mut everything), [1, 2, 3]);
    }

    #[test]
    fn an_event_reaches_only_the_streams_whose_filter_it_passes() {
        let hub = Arc::new(Hub::new(0, 16, 16));
        let mut tehran = hub.subscribe(province("IR-23"));
        let mut alborz = hub.subscribe(province("IR-30"));
        let mut team = hub.subscribe(EventFilter {
            team_id: Some("T-1".into()),
            ..EventFilter::default()
        });
        let mut everything = hub.subscribe(EventFilter::default());
        let mut urgent_tehran = hub.subscribe(EventFilter {
            province: Some("IR-23".into()),
            priority: Some(Priority::P0Immediate),
            ..EventFilter::default()
        });
        for s in [&tehran, &alborz, &team, &everything, &urgent_tehran] {
            assert!(
                matches!(s.rearm(0), Backlog::Recent { ref events, head: 0 } if events.is_empty())
            );
        }
        hub.publish([
            event(1, "IR-23", None),
            event(2, "IR-30", Some("T-1")),
            event(3, "IR-23", Some("T-1")),
        ]);
        assert_eq!(drain(&mut tehran), [1, 3]);
        assert_eq!(drain(&mut alborz), [2]);
        assert_eq!(drain(&mut team), [2, 3]);
        assert_eq!(drain(&mut everything), [1, 2, 3]);
        assert_eq!(
            drain(&mut urgent_tehran),
            Vec::<i64>::new(),
            "the whole filter is checked"
        );
        assert_eq!(hub.head(), 3);
    }

    #[test]
    fn an_event_costs_the_streams_that_may_want_it_not_every_open_stream() {
        let hub = Arc::new(Hub::new(0, 16, 16));
        let mut streams = Vec::new();
        for n in 0..1_000 {
            let team = hub.subscribe(EventFilter {
                team_id: Some(format!("T-{n}")),
                ..EventFilter::default()
            });
            let _ = team.rearm(0);
            streams.push(team);
            let elsewhere = hub.subscribe(province(&format!("IR-{}", 100 + n % 30)));
            let _ = elsewhere.rearm(0);
            streams.push(elsewhere);
        }
        let mut tehran = hub.subscribe(province("IR-23"));
        let _ = tehran.rearm(0);
        hub.publish([event(1, "IR-23", Some("T-7")), event(2, "IR-23", None)]);
        assert_eq!(drain(&mut streams[14]), [1], "team T-7 has its event");
        assert_eq!(drain(&mut tehran), [1, 2]);
        // Event 1: team T-7 and Tehran's stream; event 2: Tehran's stream.
        assert_eq!(hub.examined(), 3, "2,001 streams open, 3 checks");
    }

    #[test]
    fn a_new_stream_is_offered_nothing_until_it_rearms_and_then_everything() {
        let hub = Arc::new(Hub::new(0, 16, 16));
        let mut stream = hub.subscribe(EventFilter::default());
        hub.publish([event(1, "IR-23", None)]);
        assert!(drain(&mut stream).is_empty());
        let Backlog::Recent { events, head } = stream.rearm(0) else {
            panic!("the recent events reach back to the start");
        };
        assert_eq!((events.len(), head), (1, 1));
        hub.publish([event(2, "IR-23", None)]);
        assert_eq!(drain(&mut stream), [2]);
    }

    #[test]
    fn a_full_queue_marks_the_stream_lagged_and_rearming_reads_the_rest_from_memory() {
        let hub = Arc::new(Hub::new(0, 2, 100));
        let mut stream = hub.subscribe(province("IR-23"));
        let _ = stream.rearm(0);
        hub.publish((1..=5).map(|n| event(n, if n == 4 { "IR-30" } else { "IR-23" }, None)));
        assert!(stream.lagged());
        assert_eq!(drain(&mut stream), [1, 2]);
        let Backlog::Recent { events, head } = stream.rearm(2) else {
            panic!("the recent events reach back to the cursor");
        };
        let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
        assert_eq!((sequences, head), (vec![3, 5], 5));
        assert!(!stream.lagged());
        hub.publish([event(6, "IR-23", None)]);
        assert_eq!(drain(&mut stream), [6]);
    }

    #[test]
    fn a_cursor_older_than_the_recent_events_reads_from_the_database() {
        let hub = Arc::new(Hub::new(10, 16, 3));
        let stream = hub.subscribe(EventFilter::default());
        hub.publish((11..=15).map(|n| event(n, "IR-23", None)));
        assert!(matches!(stream.rearm(11), Backlog::Stored { head: 15 }));
        assert!(
            matches!(stream.rearm(12), Backlog::Recent { ref events, .. } if events.len() == 3)
        );
        assert!(
            matches!(stream.rearm(15), Backlog::Recent { ref events, .. } if events.is_empty())
        );
        let fresh = Arc::new(Hub::new(10, 16, 3));
        let stream = fresh.subscribe(EventFilter::default());
        assert!(
            matches!(stream.rearm(9), Backlog::Stored { head: 10 }),
            "events from before the start are not in memory"
        );
    }

    #[test]
    fn a_dropped_stream_leaves_the_index_and_a_closed_hub_ends_every_queue() {
        let hub = Arc::new(Hub::new(0, 16, 16));
        let team = hub.subscribe(EventFilter {
            team_id: Some("T-1".into()),
            ..EventFilter::default()
        });
        let mut other = hub.subscribe(province("IR-23"));
        assert_eq!(hub.subscribers(), 2);
        drop(team);
        assert_eq!(hub.subscribers(), 1);
        assert!(hub.lock().by_team.is_empty());
        hub.close();
        assert!(matches!(
            other.queue.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }
}
