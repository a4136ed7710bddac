//! A national day (issue 13, point 11): a generated day of calls from all 31 provinces, with the
//! official mix, on the national directory, against teams and centres that work their cases
//! as real ones do (a team acknowledges at once, is on scene within a quarter of an hour and
//! clears within two hours; a centre accepts within half an hour and is done within hours).
//!
//! The day is seeded, so every run sends the same calls. It holds `NATIONAL_DAY_CALLS` calls
//! (900 by default: the suite runs it on both backends in CI's time), spread over 24 hours with
//! 1480's evening surge. It asserts what the issue asks: every P0 case got a team of its cover
//! chain or waited in the team queue with the decision saying so, and every wait was served
//! when a team freed; no team is left busy once its dispatches are done; no centre ever held
//! more cases than its places; every case's county is canonical, whatever spelling was sent;
//! and the statistics count exactly what was sent. It prints the day's figures.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use tonic::Code;

use crate::common::rng::Rng;
use crate::common::{Backend, TestDb, TestServer};
use referrals::pb::{
    self, AssignmentPurpose, Category, DispatchStatus, EmergencyAction, GetStatisticsRequest,
    HotlineAction, ListCountiesRequest, ReferralStatus, ReportDispatchStatusRequest,
    TransitionReferralRequest,
};
use referrals::sample::{Sample, timestamp};

/// The calls of the day, unless `NATIONAL_DAY_CALLS` says otherwise.
const CALLS: usize = 900;

/// One call of the day.
struct Call {
    at: DateTime<Utc>,
    request: Request,
    category: Category,
}

enum Request {
    Emergency(pb::ReportEmergencyRequest),
    Hotline(pb::SubmitReferralRequest),
}

/// What the simulated teams and centres do next, and when.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// A team moves its dispatch to `to`.
    Dispatch {
        dispatch_id: String,
        team_id: String,
        to: i32,
    },
    /// A centre moves its referral to `to`.
    Referral {
        referral_id: String,
        point_id: String,
        to: i32,
    },
}

/// The teams and centres at work, with what they have in hand.
#[derive(Default)]
struct Field {
    /// Steps by when they happen (ties in the order they were planned).
    steps: BTreeMap<(DateTime<Utc>, u64), Step>,
    planned: u64,
    /// The version each dispatch or referral was last seen at.
    versions: HashMap<String, i64>,
    /// Dispatches and referrals already in hand.
    known: HashSet<String>,
    /// Cases waiting in the team queue, to look at again when a team frees.
    waiting: HashSet<String>,
    /// Transitions the server refused because it had moved the thing first (a deadline).
    overtaken: u32,
}

impl Field {
    /// The answer to a team's or centre's step; `None` when the server had moved the thing
    /// first (a deadline passed), which is counted.
    fn answered<T>(
        &mut self,
        answer: Result<tonic::Response<T>, tonic::Status>,
        who: &str,
    ) -> Option<T> {
        match answer {
            Ok(answer) => Some(answer.into_inner()),
            Err(status) if matches!(status.code(), Code::FailedPrecondition | Code::Aborted) => {
                self.overtaken += 1;
                None
            }
            Err(status) => panic!("{who}: {status:?}"),
        }
    }

    fn plan(&mut self, at: DateTime<Utc>, step: Step) {
        self.planned += 1;
        self.steps.insert((at, self.planned), step);
    }

    /// Takes in hand what the case has open that the field does not know yet.
    async fn sync(&mut self, server: &TestServer, case_id: &str, now: DateTime<Utc>) {
        let case = server.case(case_id).await;
        for d in &case.dispatches {
            let open = !matches!(
                d.status(),
                DispatchStatus::Cleared | DispatchStatus::Cancelled | DispatchStatus::Declined
            );
            if open && self.known.insert(d.dispatch_id.clone()) {
                self.versions.insert(d.dispatch_id.clone(), d.version);
                // The crew acknowledges at once.
                self.plan(
                    now,
                    Step::Dispatch {
                        dispatch_id: d.dispatch_id.clone(),
                        team_id: d.team_id.clone(),
                        to: DispatchStatus::Acknowledged as i32,
                    },
                );
                self.waiting.remove(case_id);
            }
        }
        for r in &case.referrals {
            let open = r.status() == ReferralStatus::Requested;
            let takes_place = r.purpose() != AssignmentPurpose::Notification;
            if open && takes_place && self.known.insert(r.referral_id.clone()) {
                self.versions.insert(r.referral_id.clone(), r.version);
                self.plan(
                    now + Duration::minutes(5 + (self.planned % 25) as i64),
                    Step::Referral {
                        referral_id: r.referral_id.clone(),
                        point_id: r.service_point_id.clone(),
                        to: ReferralStatus::Accepted as i32,
                    },
                );
            }
        }
    }
}

/// The day's calls, generated from `seed`.
fn generate(seed: u64, calls: usize, start: DateTime<Utc>, counties: &[pb::County]) -> Vec<Call> {
    let mut rng = Rng(seed);
    let provinces = referrals::domain::province::all();
    let mut day = Vec::with_capacity(calls);
    for n in 0..calls {
        // Spread over the day; 1480's share rises in the evening (its surge).
        let at = start + Duration::seconds((n as i64 * 86_400) / calls as i64);
        let hour = (at.timestamp() / 3600 + 3) % 24;
        let hotline_share = if (18..24).contains(&hour) { 45 } else { 22 };
        let hotline = rng.below(100) < hotline_share;
        // Tehran takes about a sixth of the calls, the other provinces share the rest.
        let province = if rng.below(6) == 0 {
            "IR-23"
        } else {
            provinces[rng.below(provinces.len())].code
        };
        let here: Vec<&pb::County> = counties.iter().filter(|c| c.province == province).collect();
        let county = here[rng.below(here.len())];
        // Call centres spell the county every way they can.
        let spelled = match rng.below(6) {
            0 => county.name_en.clone(),
            1 => county.name_fa.clone(),
            2 => county.name_en.to_lowercase(),
            3 => format!("شهرستان {}", county.name_fa),
            4 => county.id.clone(),
            _ => format!("{} County", county.name_en.to_uppercase()),
        };
        let started = at.timestamp() - 610;
        let id = format!("day-{seed}-{n}");
        let call = if hotline {
            hotline_call(&mut rng, &id, started, province, &spelled)
        } else {
            emergency_call(&mut rng, &id, started, province, &spelled)
        };
        day.push(Call { at, ..call });
    }
    // Twelve hours in, a surge: for an hour, one call in eight of the day's comes from Qom
    // (four teams of its own), each about someone hurt in violence going on now. Qom's teams,
    // then its neighbours', run out and the rest wait in the team queue.
    let qom: Vec<&pb::County> = counties.iter().filter(|c| c.province == "IR-25").collect();
    let surge = calls / 8;
    for n in 0..surge {
        let at = start + Duration::hours(12) + Duration::seconds((n as i64 * 3600) / surge as i64);
        let county = qom[rng.below(qom.len())];
        let started = at.timestamp() - 610;
        let id = format!("day-{seed}-surge-{n}");
        let request = located(Sample::child(started), started, "IR-25", &county.name_en)
            .subject(|s| {
                s.age = Some(pb::subject::Age::AgeYears(30));
                s.minor = Some(false);
            })
            .risk(|r| {
                r.violence_ongoing = true;
                r.injury_or_medical_need = true;
                r.recency = pb::Recency::Ongoing as i32;
            })
            .with(|i| {
                i.primary_category = Category::SpouseAbuse as i32;
                i.secondary_categories.clear();
            })
            .emergency(id, EmergencyAction::MobileTeam);
        day.push(Call {
            at,
            request: Request::Emergency(request),
            category: Category::SpouseAbuse,
        });
    }
    day.sort_by_key(|call| call.at);
    day
}

fn located(sample: Sample, started: i64, province: &str, county: &str) -> Sample {
    let (province, county) = (province.to_owned(), county.to_owned());
    sample.with(move |i| {
        let contact = i.contact.as_mut().unwrap();
        contact.answering_province = province.clone();
        contact.started_at = Some(timestamp(started));
        contact.answered_at = Some(timestamp(started + 20));
        contact.ended_at = Some(timestamp(started + 600));
        let location = i.location.get_or_insert_default();
        location.province = province;
        location.county = county;
        location.neighbourhood.clear();
        location.coordinates = None;
    })
}

/// A 123 call: three in four are nuisance, silent or information calls; the rest follow the
/// line's mix (child abuse 29 %, acute family conflict 24 %, spouse abuse 15 %, suicide 1 %,
/// the rest spread).
fn emergency_call(rng: &mut Rng, id: &str, started: i64, province: &str, county: &str) -> Call {
    let roll = rng.below(100);
    if roll < 75 {
        let category = if roll < 50 {
            Category::NuisanceOrSilent
        } else {
            Category::InformationOnly
        };
        let request = located(Sample::child(started), started, province, county)
            .minimal(category)
            .emergency(id, EmergencyAction::ResolvedByPhone);
        return Call {
            at: DateTime::UNIX_EPOCH,
            request: Request::Emergency(request),
            category,
        };
    }
    let pick = rng.below(100);
    let (category, minor) = match pick {
        0..29 => (
            [
                Category::ChildAbusePhysical,
                Category::ChildAbuseEmotional,
                Category::ChildNeglect,
                Category::ChildAbuseSexual,
            ][rng.below(4)],
            true,
        ),
        29..53 => (Category::AcuteFamilyConflict, false),
        53..68 => (Category::SpouseAbuse, false),
        68..69 => (Category::SuicideAttempt, false),
        _ => [
            (Category::ElderAbuse, false),
            (Category::RunawayOrExpelled, true),
            (Category::WomenAndGirlsAtRisk, false),
            (Category::Homelessness, false),
            (Category::StreetAndWorkingChildren, true),
            (Category::DisabledPersonAbuse, false),
            (Category::ChildAtRisk, true),
        ][rng.below(7)],
    };
    // How acute: about one in four is going on now.
    let ongoing = rng.below(4) == 0;
    let injured = rng.below(5) == 0;
    let age = if minor {
        5 + rng.below(13) as u32
    } else {
        20 + rng.below(50) as u32
    };
    let sample = located(Sample::child(started), started, province, county)
        .subject(|s| {
            s.age = Some(pb::subject::Age::AgeYears(age));
            s.minor = Some(minor);
        })
        .risk(|r| {
            r.violence_ongoing = ongoing && category != Category::SuicideAttempt;
            r.injury_or_medical_need = injured;
            r.recency = if ongoing {
                pb::Recency::Ongoing as i32
            } else {
                pb::Recency::Last24Hours as i32
            };
        })
        .with(|i| {
            i.primary_category = category as i32;
            i.secondary_categories.clear();
        });
    Call {
        at: DateTime::UNIX_EPOCH,
        request: Request::Emergency(sample.emergency(id, EmergencyAction::MobileTeam)),
        category,
    }
}

/// A 1480 call: distress, marriage, parenting, divorce and addiction counselling, and a few
/// callers with suicidal thoughts (some at high risk).
fn hotline_call(rng: &mut Rng, id: &str, started: i64, province: &str, county: &str) -> Call {
    let category = [
        Category::PsychologicalDistress,
        Category::PsychologicalDistress,
        Category::MarriageAndPremarital,
        Category::Parenting,
        Category::DivorceCrisis,
        Category::Addiction,
        Category::Educational,
        Category::SuicidalThoughts,
    ][rng.below(8)];
    let high_risk = category == Category::SuicidalThoughts && rng.below(3) == 0;
    let sample = located(
        Sample::child(started).suicidal_adult(),
        started,
        province,
        county,
    )
    .with(|i| {
        i.primary_category = category as i32;
        i.secondary_categories.clear();
        if category != Category::SuicidalThoughts {
            i.risk.get_or_insert_default().suicide_screening = None;
        }
    })
    .risk(|r| {
        if let (true, Some(screening)) = (high_risk, r.suicide_screening.as_mut()) {
            screening.plan = pb::Answer::Yes as i32;
        }
    });
    let action = if high_risk {
        HotlineAction::HandOverTo123
    } else {
        HotlineAction::CounsellingCentreReferral
    };
    Call {
        at: DateTime::UNIX_EPOCH,
        request: Request::Hotline(sample.hotline(id, action)),
        category,
    }
}

async fn a_national_day_is_routed_and_tracked_to_the_end(backend: Backend) {
    let calls: usize = std::env::var("NATIONAL_DAY_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CALLS);
    let national = concat!(env!("CARGO_MANIFEST_DIR"), "/seed/national.toml");
    let server = TestServer::seeded_with(TestDb::new(backend).await, |c| {
        c.seed_directory = Some(national.into());
    })
    .await;
    let time = server.time.clone().unwrap();
    let start = time.now();
    let busy_before = server
        .db
        .integers("select count(*) from teams where status = 'busy'")
        .await;
    let load_before = server
        .db
        .integers("select cast(coalesce(sum(load), 0) as bigint) from teams")
        .await;
    let counties = server
        .directory()
        .list_counties(ListCountiesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .counties;
    let day = generate(13, calls, start, &counties);

    let mut field = Field::default();
    let mut sent: HashMap<Category, i64> = HashMap::new();
    let mut lines = (0i64, 0i64);
    let mut p0 = (0u32, 0u32, 0u32); // cases, with a team at once, queued
    let mut p0_cases = Vec::new();
    let mut over_capacity_seen = 0;
    let mut teams = HashMap::new();
    let mut centres = HashMap::new();
    let mut calls_left = day.into_iter().peekable();
    let mut checked_hour = start;
    loop {
        // The next thing to happen: a call, or a team's or centre's step, whichever is first.
        let next_step = field.steps.keys().next().copied();
        let next_call = calls_left.peek().map(|c| c.at);
        let now = match (next_call, next_step) {
            (None, None) => break,
            (Some(call), Some((step, _))) => call.min(step),
            (Some(call), None) => call,
            (None, Some((step, _))) => step,
        };
        time.set(now.max(time.now()));
        if now - checked_hour >= Duration::hours(1) {
            checked_hour = now;
            over_capacity_seen += over_capacity(&server).await;
        }
        if next_call == Some(now) && next_step.is_none_or(|(step, _)| step > now) {
            let call = calls_left.next().unwrap();
            *sent.entry(call.category).or_default() += 1;
            let receipt = match call.request {
                Request::Emergency(request) => {
                    lines.1 += 1;
                    server.report(request).await
                }
                Request::Hotline(request) => {
                    lines.0 += 1;
                    server.submit(request).await
                }
            };
            let routing = receipt.routing.clone().unwrap_or_default();
            if receipt.priority() == pb::Priority::P0Immediate {
                p0.0 += 1;
                p0_cases.push(receipt.case_id.clone());
                let team = routing
                    .assignments
                    .iter()
                    .any(|a| a.purpose() == AssignmentPurpose::Dispatch);
                let queued = routing.notes.iter().any(|n| n.contains("team queue"));
                assert!(
                    team || queued,
                    "a P0 case with neither a team nor a place in the queue: {routing:?}"
                );
                if team {
                    p0.1 += 1;
                } else {
                    p0.2 += 1;
                }
            }
            if routing.notes.iter().any(|n| n.contains("team queue")) {
                field.waiting.insert(receipt.case_id.clone());
            }
            if !routing.assignments.is_empty() {
                field.sync(&server, &receipt.case_id, now).await;
            }
            continue;
        }
        let (key, step) = field.steps.pop_first().unwrap();
        let at = key.0;
        match step {
            Step::Dispatch {
                dispatch_id,
                team_id,
                to,
            } => {
                let client = teams
                    .entry(team_id.clone())
                    .or_insert_with(|| server.team_dispatch(&team_id));
                let answer = client
                    .report_dispatch_status(ReportDispatchStatusRequest {
                        dispatch_id: dispatch_id.clone(),
                        expected_version: field.versions[&dispatch_id],
                        status: to,
                        reason: String::new(),
                        position: None,
                        ..Default::default()
                    })
                    .await;
                let who = format!("{team_id} moving {dispatch_id}");
                let Some(answer) = field.answered(answer, &who) else {
                    continue;
                };
                field
                    .versions
                    .insert(dispatch_id.clone(), answer.dispatch_version);
                let next = match DispatchStatus::try_from(to).unwrap() {
                    DispatchStatus::Acknowledged => Some((1, DispatchStatus::EnRoute)),
                    DispatchStatus::EnRoute => Some((12, DispatchStatus::OnScene)),
                    DispatchStatus::OnScene => {
                        Some((30 + (field.planned % 90) as i64, DispatchStatus::Cleared))
                    }
                    _ => None,
                };
                match next {
                    Some((minutes, status)) => field.plan(
                        at + Duration::minutes(minutes),
                        Step::Dispatch {
                            dispatch_id,
                            team_id,
                            to: status as i32,
                        },
                    ),
                    // The team is free: a waiting case may have been sent it.
                    None => {
                        let waiting: Vec<String> = field.waiting.iter().cloned().collect();
                        for case_id in waiting {
                            field.sync(&server, &case_id, at).await;
                        }
                    }
                }
            }
            Step::Referral {
                referral_id,
                point_id,
                to,
            } => {
                let client = centres
                    .entry(point_id.clone())
                    .or_insert_with(|| server.centre_cases(&point_id));
                let answer = client
                    .transition_referral(TransitionReferralRequest {
                        referral_id: referral_id.clone(),
                        expected_version: field.versions[&referral_id],
                        status: to,
                        reason: String::new(),
                        ..Default::default()
                    })
                    .await;
                let who = format!("{point_id} moving {referral_id}");
                let Some(answer) = field.answered(answer, &who) else {
                    continue;
                };
                field
                    .versions
                    .insert(referral_id.clone(), answer.referral_version);
                let next = match ReferralStatus::try_from(to).unwrap() {
                    ReferralStatus::Accepted => Some((10, ReferralStatus::InProgress)),
                    ReferralStatus::InProgress => {
                        Some((60 + (field.planned % 240) as i64, ReferralStatus::Completed))
                    }
                    _ => None,
                };
                if let Some((minutes, status)) = next {
                    field.plan(
                        at + Duration::minutes(minutes),
                        Step::Referral {
                            referral_id,
                            point_id,
                            to: status as i32,
                        },
                    );
                }
            }
        }
    }
    over_capacity_seen += over_capacity(&server).await;

    assert!(
        p0.2 > 0,
        "the surge should have made P0 cases wait for a team"
    );
    // Every P0 case has its team: at once, or from the queue when one freed.
    for case_id in &p0_cases {
        let case = server.case(case_id).await;
        assert!(
            !case.dispatches.is_empty(),
            "P0 case {case_id} never got a team"
        );
    }
    assert_eq!(
        server.db.count("team_waits where ended_at is null").await,
        0
    );
    assert_eq!(
        server
            .db
            .count("team_waits w where ended_by = 'team'")
            .await,
        server.db.count("team_waits").await,
        "every wait ended with a team"
    );
    // No team is left busy once its dispatches are done.
    assert_eq!(
        server
            .db
            .count("dispatches where status not in ('cleared', 'cancelled', 'declined')")
            .await,
        0
    );
    assert_eq!(
        server
            .db
            .integers("select count(*) from teams where status = 'busy'")
            .await,
        busy_before
    );
    assert_eq!(
        server
            .db
            .integers("select cast(coalesce(sum(load), 0) as bigint) from teams")
            .await,
        load_before
    );
    // No centre held more than its places.
    assert_eq!(over_capacity_seen, 0, "a centre was over its capacity");
    // Every county is the directory's own spelling.
    assert_eq!(
        server
            .db
            .count(
                "cases c where c.county <> '' and not exists (select 1 from counties k \
                 where k.province = c.province and k.county = c.county)"
            )
            .await,
        0
    );
    // The statistics count what was sent.
    let stats = server
        .cases()
        .get_statistics(GetStatisticsRequest {
            from: Some(timestamp(start.timestamp() - 1)),
            to: Some(timestamp(time.now().timestamp() + 1)),
            province: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let total = sent.values().sum::<i64>();
    assert_eq!(stats.total, total);
    let counted =
        |list: &[pb::Count], key: &str| list.iter().find(|c| c.key == key).map_or(0, |c| c.count);
    assert_eq!(counted(&stats.by_line, "LINE_HOTLINE_1480"), lines.0);
    assert_eq!(counted(&stats.by_line, "LINE_EMERGENCY_123"), lines.1);
    for (category, n) in &sent {
        assert_eq!(
            counted(&stats.by_category, category.as_str_name()),
            *n,
            "{category:?}"
        );
    }
    assert_eq!(
        stats.by_province.iter().map(|c| c.count).sum::<i64>(),
        total
    );
    let queue = stats.team_queue.unwrap();
    let unrouted = server
        .db
        .count("routing_decisions where unrouted and decision_no = 1")
        .await;
    let still_unrouted = server
        .db
        .count("cases where routing_status = 'unrouted'")
        .await;
    let unrouted_by_rule = unrouted_by_rule(&server).await;
    println!(
        "national day on {backend:?}: {total} calls ({} on 1480, {} on 123), {} provinces; \
         P0: {} cases, {} with a team at once, {} queued and served later; \
         P0 team acknowledged within target: {} of {}; \
         team queue: {} waits, median {} s, p90 {} s; \
         unrouted at intake: {unrouted} ({unrouted_by_rule}), at the end of the day: \
         {still_unrouted}; transitions overtaken by a deadline: {}",
        lines.0,
        lines.1,
        stats.by_province.len(),
        p0.0,
        p0.1,
        p0.2,
        stats.p0_team_within_target.as_ref().unwrap().met,
        stats.p0_team_within_target.as_ref().unwrap().cases,
        queue.waited,
        queue.wait.as_ref().unwrap().median.unwrap().seconds,
        queue.wait.as_ref().unwrap().p90.unwrap().seconds,
        field.overtaken,
    );
    assert_eq!(stats.by_province.len(), 31, "calls from every province");
    assert_eq!(
        server
            .db
            .count("cases where routing_status = 'unrouted' and priority = 'p0_immediate'")
            .await,
        0,
        "every P0 case's escalation was resolved"
    );
    server.finish().await;
}

/// How many service points hold more cases than their places.
async fn over_capacity(server: &TestServer) -> i64 {
    server
        .db
        .count(
            "service_points sp where sp.capacity is not null and sp.occupancy + \
             (select count(*) from referrals r where r.service_point_id = sp.service_point_id \
              and r.status in ('requested', 'accepted', 'in_progress', 'on_hold')) > sp.capacity",
        )
        .await
}

/// The unrouted decisions, counted by the rule that made them.
async fn unrouted_by_rule(server: &TestServer) -> String {
    let mut parts = Vec::new();
    for rule in [
        "emergency-acute-no-team",
        "hotline-acute-suicide-to-123",
        "hotline-acute-to-123",
        "suicide-specialised",
        "suicide-crisis-centre",
        "child-p2-crisis-centre",
        "p2-social-base",
        "counselling",
        "default",
    ] {
        let n = server
            .db
            .count(&format!(
                "routing_decisions where unrouted and decision_no = 1 and rule_id = '{rule}'"
            ))
            .await;
        if n > 0 {
            parts.push(format!("{rule}: {n}"));
        }
    }
    parts.join(", ")
}

backend_tests!(a_national_day_is_routed_and_tracked_to_the_end);
