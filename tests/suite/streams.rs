//! The event feed's streams: replay then live, each event exactly once and in order, resumable
//! from the last number seen (also while many writers commit, and across two servers), bounded
//! for slow clients, kept alive by heartbeats, and ended cleanly at shutdown.

use std::time::Duration;

use crate::common::fixtures::{child_in_danger, emergency};
use crate::common::{Backend, TestDb, TestServer};
use referrals::pb::{
    self, CaseEvent, DispatchStatus, ReportDispatchStatusRequest, StreamAssignmentsRequest,
    WatchCasesRequest, WatchCasesResponse, watch_cases_response::Message,
};
use tonic::{Code, Streaming};

const PATIENCE: Duration = Duration::from_secs(20);

fn watch_from(after: Option<i64>) -> WatchCasesRequest {
    WatchCasesRequest {
        after_sequence: after,
        ..WatchCasesRequest::default()
    }
}

async fn open(server: &TestServer, request: WatchCasesRequest) -> Streaming<WatchCasesResponse> {
    server
        .cases()
        .watch_cases(request)
        .await
        .unwrap()
        .into_inner()
}

/// Reads events (skipping heartbeats) until `count` have arrived; fails when none arrives for
/// [`PATIENCE`], heartbeats or not.
async fn events(stream: &mut Streaming<WatchCasesResponse>, count: usize) -> Vec<CaseEvent> {
    let mut got = Vec::new();
    let mut deadline = tokio::time::Instant::now() + PATIENCE;
    while got.len() < count {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} events arrived", got.len()))
            .unwrap()
            .expect("the stream stays open");
        if let Some(Message::Event(event)) = message.message {
            got.push(event);
            deadline = tokio::time::Instant::now() + PATIENCE;
        }
    }
    got
}

/// Reads until a heartbeat arrives, failing on any event.
async fn heartbeat(stream: &mut Streaming<WatchCasesResponse>) -> pb::Heartbeat {
    let message = tokio::time::timeout(PATIENCE, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match message.message {
        Some(Message::Heartbeat(beat)) => beat,
        other => panic!("expected a heartbeat, got {other:?}"),
    }
}

async fn report(server: &TestServer, request: pb::ReportEmergencyRequest) -> pb::IntakeReceipt {
    server.report(request).await
}

fn sequences(events: &[CaseEvent]) -> Vec<i64> {
    events.iter().map(|e| e.sequence).collect()
}

async fn a_watcher_gets_the_backlog_then_live_events_each_once_in_order(backend: Backend) {
    let server = TestServer::start(backend).await;
    for i in 0..3 {
        report(&server, emergency(&format!("backlog-{i}"))).await;
    }
    // Unrouted (no directory): recorded and unrouted, two events a case.
    let mut stream = open(&server, watch_from(Some(0))).await;
    let backlog = events(&mut stream, 6).await;
    assert_eq!(sequences(&backlog), [1, 2, 3, 4, 5, 6]);
    assert_eq!(backlog[0].kind, "case_recorded");
    assert_eq!(backlog[1].kind, "case_unrouted");
    assert_eq!(backlog[0].province, "IR-23");
    assert_eq!(backlog[0].priority(), pb::Priority::P2Priority);

    let receipt = report(&server, emergency("live")).await;
    let live = events(&mut stream, 2).await;
    assert_eq!(sequences(&live), [7, 8]);
    assert_eq!(live[0].case_id, receipt.case_id);

    // A watcher that starts from now sees only what comes next.
    let mut from_now = open(&server, watch_from(None)).await;
    report(&server, emergency("after")).await;
    assert_eq!(sequences(&events(&mut from_now, 2).await), [9, 10]);
    server.finish().await;
}

async fn a_watcher_that_reconnects_misses_nothing_and_sees_nothing_twice_under_concurrent_writers(
    backend: Backend,
) {
    let server = TestServer::start(backend).await;
    let writers = 4;
    let per_writer = 12;
    let total_events = (writers * per_writer * 2) as usize;
    let mut stream = open(&server, watch_from(Some(0))).await;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (client, channel) = (server.emergency(), server.channel());
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                crate::common::report_confirmed(&client, &channel, emergency(&format!("w{w}-{i}")))
                    .await;
            }
        }));
    }
    // Read a while, drop the connection mid-stream, resume from the last number seen; twice.
    let mut seen = events(&mut stream, 15).await;
    drop(stream);
    let mut stream = open(&server, watch_from(seen.last().map(|e| e.sequence))).await;
    seen.extend(events(&mut stream, 30).await);
    drop(stream);
    let mut stream = open(&server, watch_from(seen.last().map(|e| e.sequence))).await;
    let rest = total_events - seen.len();
    seen.extend(events(&mut stream, rest).await);
    for task in tasks {
        task.await.unwrap();
    }
    let expected: Vec<i64> = (1..=total_events as i64).collect();
    assert_eq!(sequences(&seen), expected);
    assert_eq!(server.db.event_ids().await, expected);
    server.finish().await;
}

async fn a_filtered_watch_carries_only_its_cases_and_heartbeats_move_its_cursor(backend: Backend) {
    let server = TestServer::start_on(TestDb::new(backend).await, |c| {
        c.heartbeat_interval = Duration::from_millis(200);
    })
    .await;
    let mut ardabil = open(
        &server,
        WatchCasesRequest {
            after_sequence: Some(0),
            province: "IR-24".into(),
            ..WatchCasesRequest::default()
        },
    )
    .await;
    let mut p0 = open(
        &server,
        WatchCasesRequest {
            after_sequence: Some(0),
            priority: Some(pb::Priority::P0Immediate as i32),
            ..WatchCasesRequest::default()
        },
    )
    .await;
    report(&server, emergency("tehran-p1")).await;
    let mut request = emergency("ardabil-p1");
    let location = request.intake.as_mut().unwrap().location.as_mut().unwrap();
    location.province = "IR-24".into();
    location.county = "Ardabil".into();
    report(&server, request).await;
    report(&server, child_in_danger("tehran-p0")).await;

    let ardabil_events = events(&mut ardabil, 2).await;
    assert!(ardabil_events.iter().all(|e| e.province == "IR-24"));
    assert_eq!(sequences(&ardabil_events), [3, 4]);
    let p0_events = events(&mut p0, 2).await;
    assert_eq!(sequences(&p0_events), [5, 6]);

    // Nothing more for Ardabil: heartbeats come, and their number passes the Tehran P0 case, so
    // a watcher that resumes from it does not wade through what it filtered out.
    let mut beat = heartbeat(&mut ardabil).await;
    while beat.sequence < 6 {
        beat = heartbeat(&mut ardabil).await;
    }
    assert_eq!(beat.sequence, 6);
    assert!(beat.sent_at.is_some());
    server.finish().await;
}

async fn cursors_outside_what_can_be_replayed_are_refused_clearly(backend: Backend) {
    let server = TestServer::start_on(TestDb::new(backend).await, |c| {
        c.max_replay = 4;
    })
    .await;
    for i in 0..4 {
        report(&server, emergency(&format!("old-{i}"))).await;
    }
    // Eight events, four replayed at most.
    let mut client = server.cases();
    let too_old = client.watch_cases(watch_from(Some(3))).await.unwrap_err();
    assert_eq!(too_old.code(), Code::OutOfRange);
    assert!(
        too_old.message().contains("oldest replayed is 4"),
        "{}",
        too_old.message()
    );
    let ahead = client.watch_cases(watch_from(Some(20))).await.unwrap_err();
    assert_eq!(ahead.code(), Code::OutOfRange);
    let negative = client.watch_cases(watch_from(Some(-1))).await.unwrap_err();
    assert_eq!(negative.code(), Code::InvalidArgument);
    let mut stream = open(&server, watch_from(Some(4))).await;
    assert_eq!(sequences(&events(&mut stream, 4).await), [5, 6, 7, 8]);
    server.finish().await;
}

async fn an_event_written_through_one_server_reaches_a_watcher_on_another(backend: Backend) {
    let one = TestServer::start(backend).await;
    let other = TestServer::start_on(one.db.same_database(), |_| {}).await;
    let mut on_other = open(&other, watch_from(None)).await;
    let mut on_one = open(&one, watch_from(None)).await;
    // Both servers write concurrently; each watcher sees every event once, in order.
    let mut tasks = Vec::new();
    for (s, server) in [&one, &other].into_iter().enumerate() {
        let (client, channel) = (server.emergency(), server.channel());
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                crate::common::report_confirmed(&client, &channel, emergency(&format!("s{s}-{i}")))
                    .await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let expected: Vec<i64> = (1..=40).collect();
    assert_eq!(sequences(&events(&mut on_other, 40).await), expected);
    // A client of the first server that drops after 15 events resumes on the other server.
    let mut seen = events(&mut on_one, 15).await;
    drop(on_one);
    let mut moved = open(&other, watch_from(seen.last().map(|e| e.sequence))).await;
    seen.extend(events(&mut moved, 25).await);
    assert_eq!(sequences(&seen), expected);
    drop((moved, on_other));
    other.stop().await;
    one.finish().await;
}

/// On PostgreSQL another server's commit is told at once (`NOTIFY`), not found by the next
/// poll: with polling an hour apart, a watcher on one server gets events written through the
/// other within seconds, after this server's own commits have been read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_another_servers_commit_reaches_a_watcher_without_polling() {
    let one = TestServer::start_on(TestDb::new(Backend::Postgres).await, |config| {
        config.feed_poll_interval = Duration::from_secs(3600);
    })
    .await;
    let other = TestServer::start_on(one.db.same_database(), |_| {}).await;
    let mut watch = open(&one, watch_from(None)).await;
    let mut seen = Vec::new();
    for (n, server) in [&one, &one, &other, &one, &other, &other]
        .into_iter()
        .enumerate()
    {
        let receipt = report(server, emergency(&format!("notified-{n}"))).await;
        // Every event up to the new case's, within 5 s.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while seen
            .last()
            .is_none_or(|event: &CaseEvent| event.case_id != receipt.case_id)
        {
            let arrived = tokio::time::timeout_at(deadline, events(&mut watch, 1))
                .await
                .unwrap_or_else(|_| panic!("intake {n}'s events did not arrive within 5 s"));
            seen.extend(arrived);
        }
    }
    let expected: Vec<i64> = (1..=seen.len() as i64).collect();
    assert_eq!(sequences(&seen), expected);
    drop(watch);
    other.stop().await;
    one.finish().await;
}

/// Reads assignment updates, skipping heartbeats, until one arrives.
async fn next(stream: &mut Streaming<pb::StreamAssignmentsResponse>) -> pb::AssignmentUpdate {
    loop {
        let message = tokio::time::timeout(PATIENCE, stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(pb::stream_assignments_response::Message::Update(update)) = message.message {
            return update;
        }
    }
}

async fn a_team_streams_its_own_assignments_with_where_to_go(backend: Backend) {
    let server = TestServer::seeded_on(TestDb::new(backend).await).await;
    let mut dispatch = server.team_dispatch("thr-t1");
    let mut t1 = dispatch
        .stream_assignments(StreamAssignmentsRequest {
            team_id: "thr-t1".into(),
            after_sequence: None,
        })
        .await
        .unwrap()
        .into_inner();
    let receipt = report(&server, child_in_danger("team-stream")).await;
    let assigned = next(&mut t1).await;
    let event = assigned.event.as_ref().unwrap();
    assert_eq!(event.kind, "dispatch_assigned");
    assert_eq!(event.case_id, receipt.case_id);
    assert_eq!(assigned.reference, receipt.reference);
    let location = assigned.location.as_ref().expect("where to go");
    assert_eq!(location.address, "Street 4, No. 12");
    let record = assigned.dispatch.clone().unwrap();
    assert_eq!(record.status(), DispatchStatus::Assigned);

    dispatch
        .report_dispatch_status(ReportDispatchStatusRequest {
            dispatch_id: record.dispatch_id.clone(),
            expected_version: 1,
            status: DispatchStatus::Acknowledged as i32,
            reason: String::new(),
            position: None,
            ..Default::default()
        })
        .await
        .unwrap();
    let acknowledged = next(&mut t1).await;
    assert_eq!(acknowledged.event.unwrap().kind, "dispatch_acknowledged");
    assert_eq!(
        acknowledged.dispatch.unwrap().status(),
        DispatchStatus::Acknowledged
    );
    assert!(
        acknowledged.location.is_none(),
        "only a new assignment says where"
    );

    // Another team's stream replays nothing of it.
    let mut t2 = server
        .team_dispatch("thr-t2")
        .stream_assignments(StreamAssignmentsRequest {
            team_id: "thr-t2".into(),
            after_sequence: Some(0),
        })
        .await
        .unwrap()
        .into_inner();
    drop(t1);
    let mut other = server.team_dispatch("thr-t1");
    let mut t1_again = other
        .stream_assignments(StreamAssignmentsRequest {
            team_id: "thr-t1".into(),
            after_sequence: Some(0),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        next(&mut t1_again).await.event.unwrap().kind,
        "dispatch_assigned",
        "a replay from 0 starts with the assignment"
    );
    let quiet = tokio::time::timeout(Duration::from_millis(500), t2.message()).await;
    assert!(quiet.is_err(), "thr-t2 has nothing: {quiet:?}");
    server.finish().await;
}

async fn shutdown_ends_open_streams_with_where_to_resume(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    report(&server, emergency("before-shutdown")).await;
    let mut stream = open(&server, watch_from(Some(0))).await;
    events(&mut stream, 2).await;
    server.signal_shutdown();
    let end = loop {
        match tokio::time::timeout(PATIENCE, stream.message())
            .await
            .unwrap()
        {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without saying why"),
            Err(status) => break status,
        }
    };
    assert_eq!(end.code(), Code::Unavailable);
    assert!(
        end.message().contains("after_sequence 2"),
        "{}",
        end.message()
    );
    server.finish().await;
}

/// The bound on a slow client, checked below the transport (whose own buffers, HTTP/2 windows
/// and hyper's send buffer, come on top and are bounded too): a stream queues `buffer` messages
/// for a client that reads nothing, then tells it where to resume, and resuming loses nothing.
async fn a_client_that_stops_reading_is_told_it_fell_behind_and_resumes_without_loss(
    backend: Backend,
) {
    use referrals::domain::event::EventFilter;
    use referrals::tracking::feed::{Feed, FeedConfig};
    use referrals::tracking::watch::{self, WatchConfig, WatchEnd, WatchItem};

    let server = TestServer::start(backend).await;
    report(&server, emergency("first")).await;
    let store = server.db.store(2).await;
    let (feed, feed_handle) = Feed::start(
        store.clone(),
        FeedConfig {
            poll_interval: Duration::from_millis(50),
            ..FeedConfig::default()
        },
    )
    .await
    .unwrap();
    let config = WatchConfig {
        heartbeat: Duration::from_secs(60),
        max_replay: 1_000,
        buffer: 2,
        stall_timeout: Duration::from_millis(300),
    };
    let (_stop, stopping) = tokio::sync::watch::channel(false);
    let clock = referrals::clock::Clock::system();
    let started = watch::start(
        &feed,
        watch::StreamKind::Cases,
        EventFilter::default(),
        Some(0),
        config,
        clock.clone(),
        stopping.clone(),
    )
    .await;
    let Ok(mut slow) = started else {
        panic!("the watch starts")
    };
    for i in 0..5 {
        report(&server, emergency(&format!("more-{i}"))).await;
    }
    // Twelve events now exist; the client has read none.
    let end = tokio::time::timeout(PATIENCE, &mut slow.end)
        .await
        .unwrap()
        .unwrap();
    let WatchEnd::FellBehind { resume_after } = end else {
        panic!("expected FellBehind, got {end:?}")
    };
    let mut queued = Vec::new();
    while let Ok(item) = slow.items.try_recv() {
        queued.push(item);
    }
    let queued: Vec<i64> = queued
        .into_iter()
        .map(|item| match item {
            WatchItem::Event(event) => event.sequence,
            WatchItem::Heartbeat { .. } => panic!("no heartbeat was due"),
        })
        .collect();
    assert_eq!(queued, [1, 2], "no more than the buffer was queued");
    assert_eq!(resume_after, 2);

    let Ok(mut resumed) = watch::start(
        &feed,
        watch::StreamKind::Cases,
        EventFilter::default(),
        Some(resume_after),
        config,
        clock,
        stopping,
    )
    .await
    else {
        panic!("the resumed watch starts")
    };
    let mut rest = Vec::new();
    while rest.len() < 10 {
        match tokio::time::timeout(PATIENCE, resumed.items.recv())
            .await
            .unwrap()
        {
            Some(WatchItem::Event(event)) => rest.push(event.sequence),
            Some(WatchItem::Heartbeat { .. }) => {}
            None => panic!("the resumed stream ended"),
        }
    }
    assert_eq!(rest, (3..=12).collect::<Vec<_>>());
    drop(resumed);
    feed_handle.stop().await;
    store.close().await;
    server.finish().await;
}

/// Streams that fall behind share what they read: twenty streams starting from the first event
/// on a feed that keeps few events in memory read each page of the backlog from the database
/// once between them. Then, with queues of two events so that they fall behind again and again
/// while several writers commit, every stream still ends with exactly the events its filter
/// passes, in order, as the database holds them.
async fn streams_that_fall_behind_share_their_reads_and_miss_nothing(backend: Backend) {
    use referrals::domain::event::EventFilter;
    use referrals::tracking::feed::{Feed, FeedConfig};
    use referrals::tracking::watch::{self, WatchConfig, WatchItem};

    let server = TestServer::start(backend).await;
    for i in 0..15 {
        report(&server, emergency(&format!("backlog-{i}"))).await;
    }
    let store = server.db.store(4).await;
    let backlog = store.last_event().await.unwrap();
    assert!(backlog >= 30, "{backlog} events");
    let (feed, feed_handle) = Feed::start(
        store.clone(),
        FeedConfig {
            poll_interval: Duration::from_millis(20),
            recent_events: 8,
            stream_queue: 2,
            cached_pages: 64,
            page_size: 10,
        },
    )
    .await
    .unwrap();
    let config = WatchConfig {
        heartbeat: Duration::from_millis(200),
        max_replay: 100_000,
        buffer: 4,
        stall_timeout: Duration::from_secs(30),
    };
    let (_stop, stopping) = tokio::sync::watch::channel(false);
    let clock = referrals::clock::Clock::system();
    let filters = [
        EventFilter::default(),
        EventFilter {
            province: Some("IR-23".into()),
            ..EventFilter::default()
        },
        EventFilter {
            province: Some("IR-30".into()),
            ..EventFilter::default()
        },
        EventFilter {
            province: Some("IR-23".into()),
            priority: Some(referrals::domain::types::Priority::P0Immediate),
            ..EventFilter::default()
        },
    ];
    let mut streams = Vec::new();
    for n in 0..20 {
        let filter = filters[n % filters.len()].clone();
        let Ok(stream) = watch::start(
            &feed,
            watch::StreamKind::Cases,
            filter.clone(),
            Some(0),
            config,
            clock.clone(),
            stopping.clone(),
        )
        .await
        else {
            panic!("the watch starts")
        };
        streams.push((filter, stream, Vec::<i64>::new()));
    }
    /// Reads a stream until a heartbeat says it is complete up to `upto`.
    async fn read_to(stream: &mut watch::Watch, got: &mut Vec<i64>, upto: i64) {
        loop {
            match tokio::time::timeout(PATIENCE, stream.items.recv())
                .await
                .expect("the stream keeps moving")
            {
                Some(WatchItem::Event(event)) => got.push(event.sequence),
                Some(WatchItem::Heartbeat { sequence, .. }) if sequence >= upto => return,
                Some(WatchItem::Heartbeat { .. }) => {}
                None => panic!("the stream ended"),
            }
        }
    }
    for (_, stream, got) in &mut streams {
        read_to(stream, got, backlog).await;
    }
    let full_pages = backlog / 10;
    assert_eq!(
        feed.pages_read(),
        u64::try_from(full_pages).unwrap(),
        "each complete page of the backlog was read once for all twenty streams"
    );

    let writers: Vec<_> = (0..4)
        .map(|w| {
            let client = server.emergency();
            tokio::spawn(async move {
                let mut client = client;
                for i in 0..10 {
                    let request = if i % 3 == 0 {
                        child_in_danger(&format!("live-{w}-{i}"))
                    } else {
                        emergency(&format!("live-{w}-{i}"))
                    };
                    client.report_emergency(request).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let last = store.last_event().await.unwrap();
    for (filter, stream, got) in &mut streams {
        read_to(stream, got, last).await;
        let expected: Vec<i64> = store
            .events(filter, 0, last, 10_000)
            .await
            .unwrap()
            .iter()
            .map(|event| event.sequence)
            .collect();
        assert_eq!(*got, expected, "the stream for {filter:?}");
    }
    assert!(
        streams.iter().any(|(_, _, got)| got.is_empty()),
        "a province with no case had a stream that got nothing"
    );
    drop(streams);
    feed_handle.stop().await;
    store.close().await;
    server.finish().await;
}

backend_tests!(
    streams_that_fall_behind_share_their_reads_and_miss_nothing,
    a_client_that_stops_reading_is_told_it_fell_behind_and_resumes_without_loss,
    a_watcher_gets_the_backlog_then_live_events_each_once_in_order,
    a_watcher_that_reconnects_misses_nothing_and_sees_nothing_twice_under_concurrent_writers,
    a_filtered_watch_carries_only_its_cases_and_heartbeats_move_its_cursor,
    cursors_outside_what_can_be_replayed_are_refused_clearly,
    an_event_written_through_one_server_reaches_a_watcher_on_another,
    a_team_streams_its_own_assignments_with_where_to_go,
    shutdown_ends_open_streams_with_where_to_resume,
);
