//! `referrals demo`: two cases followed end to end against a real server on a throwaway SQLite
//! database with the seed directory, through the same gRPC clients the call centres use.
//!
//! The server runs on a clock the demo moves, so minutes pass in an instant: a 1480 call with
//! acute suicide risk is handed to 123, a team goes out, a crisis-intervention centre takes the
//! man in, a follow-up is done and the case is closed; then a 123 child-abuse report whose team
//! does not acknowledge in time, so the deadline re-routes it to the next team; then a crisis
//! declared in Ilam, under which a 1480 call at 02:00 goes to a counselling centre at once,
//! while the same call the night after the crisis ended waits for the morning. Each case's
//! timeline is printed with Persian labels.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::auth::{self, Keys, Role};
use crate::clock::{Clock, ManualTime};
use crate::config::{DemoConfig, ServeConfig};
use crate::domain::event::EventKind;
use crate::domain::types::Category;
use crate::grpc::auth::BearerToken;
use crate::pb::case_tracking_client::CaseTrackingClient;
use crate::pb::crisis_operation_client::CrisisOperationClient;
use crate::pb::dispatch_client::DispatchClient;
use crate::pb::emergency_intake_client::EmergencyIntakeClient;
use crate::pb::hotline_intake_client::HotlineIntakeClient;
use crate::pb::{self, watch_cases_response::Message};
use crate::sample::{self, Sample};
use crate::server::ServeError;

/// The seed directory, built in so the demo runs from anywhere.
const SEED: &str = include_str!("../seed/directory.toml");

#[derive(Parser)]
struct Defaults {
    #[command(flatten)]
    serve: ServeConfig,
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The server could not start or stopped with an error.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// A call to the server failed.
    #[error("{0}: {1}")]
    Call(&'static str, tonic::Status),
    /// The demo's files or listener could not be set up.
    #[error("{0}")]
    Setup(String),
}

type Result<T> = std::result::Result<T, DemoError>;

/// Runs the demo and prints what happens.
pub async fn run(config: DemoConfig) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("referrals-demo-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).map_err(|e| DemoError::Setup(e.to_string()))?;
    let seed = dir.join("directory.toml");
    std::fs::write(&seed, SEED).map_err(|e| DemoError::Setup(e.to_string()))?;
    let result = run_in(&dir, seed).await;
    if config.keep_data {
        println!(
            "\nThe demo's database: {}",
            dir.join("referrals.db").display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn run_in(dir: &std::path::Path, seed: PathBuf) -> Result<()> {
    let data_dir = dir.display().to_string();
    let mut config = Defaults::parse_from(["referrals", "--data-dir", data_dir.as_str()]).serve;
    // Whole minutes, so the printed times read well.
    let start = DateTime::from_timestamp(Utc::now().timestamp() / 60 * 60, 0).unwrap_or_default();
    let time = ManualTime::new(start);
    config.clock = Clock::manual(&time);
    config.migrate = true;
    config.seed_directory = Some(seed);
    config.sla_check_interval = Duration::from_millis(100);
    config.shutdown_grace = Duration::from_secs(5);
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    // Each side acts with its own token, minted with the key the server will load.
    let (keys, _) = Keys::load_or_create(dir).map_err(|e| DemoError::Setup(e.to_string()))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(crate::run(config, listener, async {
        let _ = stopped.await;
    }));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| DemoError::Setup(e.to_string()))?
        .connect_lazy();
    let demo = Demo {
        channel,
        keys,
        time,
        start,
    };
    let result = async {
        demo.hotline_case().await?;
        demo.slow_team_case().await?;
        demo.crisis_in_ilam().await
    }
    .await;
    let _ = stop.send(());
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(error.into()),
        Err(error) => return Err(DemoError::Setup(error.to_string())),
    }
    result
}

/// The demo's channel: every request carries its token.
type Authed = InterceptedService<Channel, BearerToken>;

struct Demo {
    channel: Channel,
    keys: Keys,
    time: ManualTime,
    start: DateTime<Utc>,
}

/// Who the demo acts as.
#[derive(Clone, Copy)]
enum Who<'a> {
    /// The Tehran 1480 centre's software.
    Hotline,
    /// The Tehran 123 centre's software.
    Operator,
    /// A mobile team's app.
    Team(&'a str),
    /// A receiving centre.
    Centre(&'a str),
    /// A national supervisor.
    Supervisor,
    /// A province's supervisor.
    ProvinceSupervisor(&'a str),
}

/// The province of the demo's call centres.
const TEHRAN: &str = "IR-23";

/// The province of the crisis story.
const ILAM: &str = "IR-16";

fn call(what: &'static str) -> impl FnOnce(tonic::Status) -> DemoError {
    move |status| DemoError::Call(what, status)
}

impl Demo {
    /// A channel carrying the token of `who`.
    fn channel(&self, who: Who<'_>) -> Result<Authed> {
        let (subject, role, province, team) = match who {
            Who::Hotline => ("1480-tehran", Role::Hotline, TEHRAN, None),
            Who::Operator => ("123-tehran", Role::Operator, TEHRAN, None),
            Who::Team(team) => (team, Role::Team, TEHRAN, Some(team.to_owned())),
            Who::Centre(point) => (point, Role::Centre, TEHRAN, None),
            Who::Supervisor => ("supervisor", Role::Supervisor, auth::ALL_PROVINCES, None),
            Who::ProvinceSupervisor(province) => {
                ("province-supervisor", Role::Supervisor, province, None)
            }
        };
        let token = self
            .keys
            .issue(&auth::claims(
                subject,
                role,
                province,
                None,
                team,
                Utc::now(),
                // The demo moves the server's clock two days on.
                Duration::from_secs(7 * 24 * 3600),
            ))
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        let bearer = BearerToken::new(&token)
            .ok_or_else(|| DemoError::Setup("the token is not a header value".into()))?;
        Ok(InterceptedService::new(self.channel.clone(), bearer))
    }

    fn cases(&self, who: Who<'_>) -> Result<CaseTrackingClient<Authed>> {
        Ok(CaseTrackingClient::new(self.channel(who)?))
    }

    /// Sets the server's clock to `minutes` after the demo's start.
    fn at(&self, minutes: i64) {
        self.time
            .set(self.start + chrono::Duration::minutes(minutes));
    }

    async fn case(&self, who: Who<'_>, case_id: &str) -> Result<pb::Case> {
        let case = self
            .cases(who)?
            .get_case(pb::GetCaseRequest {
                case_id: case_id.into(),
            })
            .await
            .map_err(call("GetCase"))?
            .into_inner()
            .case;
        case.ok_or_else(|| DemoError::Setup("GetCase returned no case".into()))
    }

    async fn report_dispatch(
        &self,
        dispatch: &mut pb::TeamDispatch,
        status: pb::DispatchStatus,
        minutes: i64,
        position: Option<(f64, f64)>,
    ) -> Result<()> {
        self.at(minutes);
        dispatch.version = DispatchClient::new(self.channel(Who::Team(&dispatch.team_id))?)
            .report_dispatch_status(pb::ReportDispatchStatusRequest {
                dispatch_id: dispatch.dispatch_id.clone(),
                expected_version: dispatch.version,
                status: status as i32,
                reason: String::new(),
                position: position.map(|(latitude, longitude)| pb::Coordinates {
                    latitude,
                    longitude,
                }),
                // The report's key, the same on every retry of it: a phone that resends after
                // a lost answer gets the first answer again.
                request_id: format!("{}:{}", dispatch.dispatch_id, dispatch.version),
                ..Default::default()
            })
            .await
            .map_err(call("ReportDispatchStatus"))?
            .into_inner()
            .dispatch_version;
        println!(
            "  +{minutes:>4} min  team {} reports {}",
            dispatch.team_id,
            short(status.as_str_name(), "DISPATCH_STATUS_")
        );
        Ok(())
    }

    /// A 1480 call with acute suicide risk, handed to 123 and followed to closure.
    async fn hotline_case(&self) -> Result<()> {
        println!("== 1 == A 1480 call: a young man with a plan to end his life");
        self.at(0);
        let receipt = HotlineIntakeClient::new(self.channel(Who::Hotline)?)
            .submit_referral(hotline_intake())
            .await
            .map_err(call("SubmitReferral"))?
            .into_inner()
            .receipt
            .ok_or_else(|| DemoError::Setup("no receipt".into()))?;
        print_receipt(&receipt);
        let case_id = receipt.case_id.clone();
        let case = self.case(Who::Hotline, &case_id).await?;
        let Some(hand_over) = case.referrals.first().cloned() else {
            return Err(DemoError::Setup("the case was not handed over".into()));
        };

        // The province's 123 centre takes the case over and sends a team.
        self.at(1);
        self.cases(Who::Centre(&hand_over.service_point_id))?
            .transition_referral(pb::TransitionReferralRequest {
                referral_id: hand_over.referral_id.clone(),
                expected_version: hand_over.version,
                status: pb::ReferralStatus::Accepted as i32,
                reason: String::new(),
                ..Default::default()
            })
            .await
            .map_err(call("TransitionReferral"))?;
        println!(
            "  +   1 min  {} accepts the hand-over",
            hand_over.service_point_id
        );
        let version = self
            .case(Who::Operator, &case_id)
            .await?
            .summary
            .map(|s| s.version)
            .unwrap_or(0);
        let sent = self
            .cases(Who::Operator)?
            .request_assignment(pb::RequestAssignmentRequest {
                case_id: case_id.clone(),
                expected_version: version,
                action: pb::ActionType::DispatchMobileTeam as i32,
                kind: 0,
                reason: "the man is alone at home with the means".into(),
                ..Default::default()
            })
            .await
            .map_err(call("RequestAssignment"))?
            .into_inner();
        print_decision("  +   1 min  123 asks for a team:", sent.decision.as_ref());

        let mut dispatch = self
            .case(Who::Operator, &case_id)
            .await?
            .dispatches
            .first()
            .cloned()
            .ok_or_else(|| DemoError::Setup("no team was sent".into()))?;
        use pb::DispatchStatus as D;
        self.report_dispatch(&mut dispatch, D::Acknowledged, 2, None)
            .await?;
        self.report_dispatch(&mut dispatch, D::EnRoute, 3, Some((35.70, 51.40)))
            .await?;
        self.report_dispatch(&mut dispatch, D::OnScene, 24, Some((35.64, 51.47)))
            .await?;

        // On scene, the team asks for a crisis-intervention centre; it accepts him.
        self.at(30);
        let version = self
            .case(Who::Operator, &case_id)
            .await?
            .summary
            .map(|s| s.version)
            .unwrap_or(0);
        let referred = self
            .cases(Who::Operator)?
            .request_assignment(pb::RequestAssignmentRequest {
                case_id: case_id.clone(),
                expected_version: version,
                action: pb::ActionType::ReferTo as i32,
                kind: pb::ServicePointKind::CrisisInterventionCentre as i32,
                reason: "needs a safe place tonight".into(),
                ..Default::default()
            })
            .await
            .map_err(call("RequestAssignment"))?
            .into_inner();
        print_decision(
            "  +  30 min  referral asked for:",
            referred.decision.as_ref(),
        );
        self.at(45);
        let case = self.case(Who::Operator, &case_id).await?;
        if let Some(referral) = case
            .referrals
            .iter()
            .find(|r| r.purpose() == pb::AssignmentPurpose::Referral)
        {
            self.cases(Who::Centre(&referral.service_point_id))?
                .transition_referral(pb::TransitionReferralRequest {
                    referral_id: referral.referral_id.clone(),
                    expected_version: referral.version,
                    status: pb::ReferralStatus::Accepted as i32,
                    reason: String::new(),
                    ..Default::default()
                })
                .await
                .map_err(call("TransitionReferral"))?;
            println!(
                "  +  45 min  {} accepts the referral",
                referral.service_point_id
            );
        }
        self.report_dispatch(&mut dispatch, D::Transporting, 50, None)
            .await?;
        self.report_dispatch(&mut dispatch, D::Cleared, 75, None)
            .await?;

        // A follow-up call, due by default within 72 hours for suicide risk; done the next day.
        self.at(80);
        let follow_up = self
            .cases(Who::Hotline)?
            .schedule_follow_up(pb::ScheduleFollowUpRequest {
                case_id: case_id.clone(),
                due_at: None,
                reason: "safety check call".into(),
                expected_version: 0,
                ..Default::default()
            })
            .await
            .map_err(call("ScheduleFollowUp"))?
            .into_inner();
        println!("  +  80 min  follow-up scheduled (due in 72 hours)");
        self.at(24 * 60);
        self.cases(Who::Hotline)?
            .record_follow_up(pb::RecordFollowUpRequest {
                follow_up_id: follow_up.follow_up_id,
                outcome: "spoke with him at the centre; safety plan in place".into(),
                expected_version: 0,
                ..Default::default()
            })
            .await
            .map_err(call("RecordFollowUp"))?;
        println!("  +  24 h    follow-up done");
        let version = self
            .case(Who::Operator, &case_id)
            .await?
            .summary
            .map(|s| s.version)
            .unwrap_or(0);
        self.cases(Who::Operator)?
            .close_case(pb::CloseCaseRequest {
                case_id: case_id.clone(),
                expected_version: version,
                outcome: pb::CaseOutcome::ReferredAndAccepted as i32,
                reason: "admitted to the crisis-intervention centre".into(),
                ..Default::default()
            })
            .await
            .map_err(call("CloseCase"))?;
        println!("  +  24 h    case closed: referred and accepted");
        self.print_timeline(&case_id).await
    }

    /// A 123 child-abuse report whose first team does not acknowledge within 3 minutes.
    async fn slow_team_case(&self) -> Result<()> {
        println!(
            "\n== 2 == A 123 report: a girl beaten at home right now; the first team is silent"
        );
        let start = 2 * 24 * 60;
        self.at(start);
        let mut watch = self
            .cases(Who::Supervisor)?
            .watch_cases(pb::WatchCasesRequest::default())
            .await
            .map_err(call("WatchCases"))?
            .into_inner();
        let receipt = EmergencyIntakeClient::new(self.channel(Who::Operator)?)
            .report_emergency(emergency_intake())
            .await
            .map_err(call("ReportEmergency"))?
            .into_inner()
            .receipt
            .ok_or_else(|| DemoError::Setup("no receipt".into()))?;
        print_receipt(&receipt);
        println!("  +   3 min  no acknowledgement from the team ...");
        self.at(start + 3);
        // Wait for the deadline check to re-route, as a supervisor's screen would see it.
        let mut assigned = 0;
        while assigned < 2 {
            let message = tokio::time::timeout(Duration::from_secs(10), watch.message())
                .await
                .map_err(|_| DemoError::Setup("the deadline did not fire".into()))?
                .map_err(call("WatchCases"))?;
            match message.and_then(|m| m.message) {
                Some(Message::Event(event)) if event.kind == "dispatch_assigned" => assigned += 1,
                Some(_) => {}
                None => return Err(DemoError::Setup("the watch ended".into())),
            }
        }
        drop(watch);
        let case = self.case(Who::Supervisor, &receipt.case_id).await?;
        print_decision(
            "  +   3 min  deadline missed; re-routed:",
            case.reroutes.last(),
        );
        self.print_timeline(&receipt.case_id).await
    }

    /// A crisis declared in Ilam: a 1480 call at 02:00 goes to the counselling centre, open
    /// round the clock for the crisis; the night after it ended, the same call waits for the
    /// morning.
    async fn crisis_in_ilam(&self) -> Result<()> {
        println!("\n== 3 == A crisis in Ilam: the 1480 line round the clock");
        // The first 02:00 in Tehran at least three days after the start.
        let tehran = self.start.with_timezone(&chrono_tz::Asia::Tehran);
        let night = (tehran + chrono::Duration::days(3))
            .date_naive()
            .and_hms_opt(2, 0, 0)
            .and_then(|t| t.and_local_timezone(chrono_tz::Asia::Tehran).single())
            .ok_or_else(|| DemoError::Setup("no 02:00 in Tehran".into()))?
            .with_timezone(&Utc);
        let minutes = |at: DateTime<Utc>| (at - self.start).num_minutes();
        let first = minutes(night);
        let clock = |at: i64| {
            (self.start + chrono::Duration::minutes(at))
                .with_timezone(&chrono_tz::Asia::Tehran)
                .format("%a %H:%M")
                .to_string()
        };
        let crises = || -> Result<_> {
            Ok(CrisisOperationClient::new(
                self.channel(Who::ProvinceSupervisor(ILAM))?,
            ))
        };

        self.at(first - 30);
        let crisis = crises()?
            .declare_crisis(pb::DeclareCrisisRequest {
                request_id: format!("demo-crisis-{}", uuid::Uuid::now_v7()),
                crisis: Some(pb::CrisisTerms {
                    name: "زلزله ایلام (demo)".into(),
                    province: ILAM.into(),
                    round_the_clock: vec![pb::ServicePointKind::CounsellingCentre as i32],
                    ..Default::default()
                }),
            })
            .await
            .map_err(call("DeclareCrisis"))?
            .into_inner()
            .crisis
            .ok_or_else(|| DemoError::Setup("no crisis".into()))?;
        println!(
            "  {}  Ilam's supervisor declares «{}»: {} — counselling centres open round the clock",
            clock(first - 30),
            crisis
                .terms
                .as_ref()
                .map(|t| t.name.as_str())
                .unwrap_or_default(),
            crisis.status_label_fa,
        );

        self.at(first);
        let during = self.ilam_call(night, "demo-call-3").await?;
        println!(
            "  {}  a 1480 call from Ilam, someone in distress:",
            clock(first)
        );
        self.print_waiting(&during);
        let decision = self.case(Who::Supervisor, &during.case_id).await?.routing;
        if let Some(named) = decision.as_ref().and_then(|d| d.crises.first()) {
            println!(
                "             the decision names the crisis: «{}»",
                named.name
            );
        }

        self.at(first + 6 * 60);
        crises()?
            .end_crisis(pb::EndCrisisRequest {
                request_id: format!("demo-crisis-end-{}", uuid::Uuid::now_v7()),
                crisis_id: crisis.crisis_id.clone(),
                expected_version: crisis.version,
                ends_at: None,
            })
            .await
            .map_err(call("EndCrisis"))?;
        println!(
            "  {}  the crisis ends; nothing is undone by hand",
            clock(first + 6 * 60)
        );

        let next = first + 24 * 60;
        self.at(next);
        let after = self
            .ilam_call(night + chrono::Duration::days(1), "demo-call-4")
            .await?;
        println!("  {}  the same call, the next night:", clock(next));
        self.print_waiting(&after);
        let figures = crises()?
            .get_crisis_statistics(pb::GetCrisisStatisticsRequest {
                crisis_id: crisis.crisis_id,
            })
            .await
            .map_err(call("GetCrisisStatistics"))?
            .into_inner();
        let span = match (figures.from, figures.to) {
            (Some(from), Some(to)) => (to.seconds - from.seconds) as f64 / 3600.0,
            _ => 0.0,
        };
        println!(
            "  Ilam's cases in the crisis's {span:.1} hours: {}; in the same span before it: {}",
            figures.during.map_or(0, |s| s.total),
            figures.before.map_or(0, |s| s.total)
        );
        Ok(())
    }

    /// Records the demo's Ilam call, begun five minutes before `at`.
    async fn ilam_call(&self, at: DateTime<Utc>, call_id: &str) -> Result<pb::IntakeReceipt> {
        HotlineIntakeClient::new(self.channel(Who::Hotline)?)
            .submit_referral(ilam_intake(at, call_id))
            .await
            .map_err(call("SubmitReferral"))?
            .into_inner()
            .receipt
            .ok_or_else(|| DemoError::Setup("no receipt".into()))
    }

    /// Where a receipt sends the case, and whether it waits for an opening.
    fn print_waiting(&self, receipt: &pb::IntakeReceipt) {
        print_receipt(receipt);
        let waits = receipt
            .routing
            .as_ref()
            .and_then(|r| r.assignments.first())
            .and_then(|a| a.waits_until);
        match waits.and_then(|t| DateTime::from_timestamp(t.seconds, 0)) {
            Some(opens) => println!(
                "             waits for the centre to open at {}",
                opens
                    .with_timezone(&chrono_tz::Asia::Tehran)
                    .format("%a %H:%M")
            ),
            None => println!("             taken now by the counsellor on duty"),
        }
    }

    async fn print_timeline(&self, case_id: &str) -> Result<()> {
        let case = self.case(Who::Supervisor, case_id).await?;
        let summary = case.summary.unwrap_or_default();
        let category = category_label(summary.primary_category());
        println!(
            "\n  Timeline of {} — {} — {}",
            summary.reference,
            category,
            short(summary.priority().as_str_name(), "PRIORITY_")
        );
        let events = self
            .cases(Who::Supervisor)?
            .get_timeline(pb::GetTimelineRequest {
                case_id: case_id.into(),
            })
            .await
            .map_err(call("GetTimeline"))?
            .into_inner()
            .events;
        for event in events {
            let at = event
                .occurred_at
                .and_then(|t| DateTime::from_timestamp(t.seconds, 0))
                .unwrap_or_default()
                .with_timezone(&chrono_tz::Asia::Tehran);
            let detail = if event.reason.is_empty() {
                String::new()
            } else {
                format!(" — {}", event.reason)
            };
            println!(
                "  #{:<3} {}  {:<22} {:<24} {}{}",
                event.sequence,
                at.format("%a %H:%M"),
                event.kind,
                event.actor,
                kind_label(&event.kind),
                detail
            );
        }
        Ok(())
    }
}

fn short(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_lowercase()
}

fn category_label(category: pb::Category) -> String {
    let name = short(category.as_str_name(), "CATEGORY_");
    match name.parse::<Category>() {
        Ok(category) => format!("{} ({name})", category.label_fa()),
        Err(_) => name,
    }
}

fn print_receipt(receipt: &pb::IntakeReceipt) {
    println!(
        "  +   0 min  recorded {} as {}",
        receipt.reference,
        short(receipt.priority().as_str_name(), "PRIORITY_")
    );
    if let Some(routing) = &receipt.routing {
        for assignment in &routing.assignments {
            let to = match &assignment.destination {
                Some(pb::assignment::Destination::TeamId(id)) => format!("team {id}"),
                Some(pb::assignment::Destination::ServicePointId(id)) => id.clone(),
                None => "nobody".into(),
            };
            println!(
                "             rule {}: {} → {to} ({})",
                routing.rule_id,
                short(assignment.purpose().as_str_name(), "ASSIGNMENT_PURPOSE_"),
                assignment.name
            );
        }
    }
}

fn print_decision(what: &str, decision: Option<&pb::RoutingDecision>) {
    let Some(decision) = decision else {
        println!("{what} no decision");
        return;
    };
    for action in &decision.actions {
        let chosen = action
            .assignment
            .as_ref()
            .map(|a| a.name.clone())
            .unwrap_or_else(|| "nobody qualified".into());
        let passed: Vec<String> = action
            .candidates
            .iter()
            .filter(|c| c.verdict() != pb::CandidateVerdict::Chosen)
            .take(3)
            .map(|c| {
                format!(
                    "{} {}",
                    c.id,
                    short(c.verdict().as_str_name(), "CANDIDATE_VERDICT_")
                )
            })
            .collect();
        println!("{what} {chosen}");
        if !passed.is_empty() {
            println!("             passed over: {}", passed.join(", "));
        }
    }
}

/// The Persian name of an event kind, for the printed timeline.
fn kind_label(kind: &str) -> &'static str {
    kind.parse::<EventKind>().map_or("", EventKind::label_fa)
}

/// The demo's call: `call_id`, taken by `operator` ten minutes ago, in Tehran.
fn demo_call(operator: &str, call_id: &str) -> Sample {
    let now = Utc::now().timestamp();
    Sample::child(now - 600)
        .call(call_id, operator, "09120000000")
        .with(|i| {
            let contact = i.contact.get_or_insert_default();
            contact.answered_at = Some(sample::timestamp(now - 590));
            contact.ended_at = None;
            let location = i.location.get_or_insert_default();
            location.neighbourhood = String::new();
            location.address = "(demo address)".into();
            location.landmark = String::new();
        })
}

fn hotline_intake() -> pb::SubmitReferralRequest {
    use pb::Answer::{No, Yes};
    demo_call("c-1480-12", "demo-call-1")
        .suicidal_adult()
        .with(|i| {
            let reporter = i.reporter.get_or_insert_default();
            reporter.anonymous = true;
            reporter.name = String::new();
            reporter.callback_number = "09120000000".into();
            i.narrative = "(demo) He has decided how and when; he is alone tonight.".into();
        })
        .subject(|s| {
            s.age = Some(pb::subject::Age::AgeYears(24));
            s.minor = Some(false);
            s.name = String::new();
            s.national_id = String::new();
        })
        .risk(|r| {
            *r = pb::RiskFacts {
                suicide_screening: Some(pb::SuicideScreening {
                    wish_to_be_dead: Yes as i32,
                    suicidal_thoughts: Yes as i32,
                    method: Yes as i32,
                    intent: Yes as i32,
                    plan: Yes as i32,
                    behaviour_last_3_months: No as i32,
                }),
                recency: pb::Recency::Last24Hours as i32,
                ..pb::RiskFacts::default()
            }
        })
        .hotline(
            format!("demo-1480-{}", uuid::Uuid::now_v7()),
            pb::HotlineAction::HandOverTo123,
        )
}

fn emergency_intake() -> pb::ReportEmergencyRequest {
    demo_call("op-123-03", "demo-call-2")
        .with(|i| {
            let reporter = i.reporter.get_or_insert_default();
            reporter.relationship = pb::Relationship::Neighbour as i32;
            reporter.name = "(demo reporter)".into();
            reporter.callback_number = "09120000001".into();
            i.secondary_categories = Vec::new();
            i.narrative = "(demo) Screams and blows heard next door; a child crying.".into();
        })
        .subject(|s| {
            s.age = Some(pb::subject::Age::AgeYears(9));
            s.name = String::new();
            s.national_id = String::new();
        })
        .risk(|r| {
            *r = pb::RiskFacts {
                suicide_screening: Some(screening(pb::Answer::Unknown)),
                violence_ongoing: true,
                perpetrator_present: true,
                children_in_household: true,
                recency: pb::Recency::Ongoing as i32,
                ..pb::RiskFacts::default()
            }
        })
        .emergency(
            format!("demo-123-{}", uuid::Uuid::now_v7()),
            pb::EmergencyAction::MobileTeam,
        )
}

/// A 1480 call from Ilam begun five minutes before `at`: an adult in distress after the
/// earthquake, nothing acute (a counselling need, P3).
fn ilam_intake(at: DateTime<Utc>, call_id: &str) -> pb::SubmitReferralRequest {
    let started = at.timestamp() - 300;
    Sample::child(started)
        .call(call_id, "c-1480-07", "09180000000")
        .suicidal_adult()
        .with(|i| {
            i.primary_category = pb::Category::PsychologicalDistress as i32;
            i.secondary_categories = Vec::new();
            let reporter = i.reporter.get_or_insert_default();
            reporter.anonymous = true;
            reporter.name = String::new();
            i.narrative = "(demo) Cannot sleep since the earthquake; afraid of the night.".into();
            let contact = i.contact.get_or_insert_default();
            contact.answering_province = ILAM.into();
            contact.ended_at = None;
            let location = i.location.get_or_insert_default();
            location.province = ILAM.into();
            location.county = "Ilam".into();
            location.district = String::new();
            location.neighbourhood = String::new();
            location.address = "(demo address)".into();
            location.landmark = String::new();
            location.coordinates = None;
        })
        .subject(|s| {
            s.name = String::new();
            s.national_id = String::new();
        })
        .risk(|r| {
            *r = pb::RiskFacts {
                suicide_screening: Some(screening(pb::Answer::No)),
                recency: pb::Recency::Last24Hours as i32,
                ..pb::RiskFacts::default()
            }
        })
        .hotline(
            format!("demo-1480-{}", uuid::Uuid::now_v7()),
            pb::HotlineAction::CounsellingCentreReferral,
        )
}

/// A suicide screening with the same answer to every question.
fn screening(answer: pb::Answer) -> pb::SuicideScreening {
    let answer = answer as i32;
    pb::SuicideScreening {
        wish_to_be_dead: answer,
        suicidal_thoughts: answer,
        method: answer,
        intent: answer,
        plan: answer,
        behaviour_last_3_months: answer,
    }
}
