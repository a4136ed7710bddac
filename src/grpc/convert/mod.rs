//! Conversions between the wire types of `referral.v1` and the domain's.
//!
//! Requests are parsed into domain values here: every bad field is collected with its path, so
//! one `INVALID_ARGUMENT` names all of them. Descriptions never repeat the value they reject.

mod tracking;

pub(crate) use tracking::*;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use prost::Message;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::access::Caller;
use crate::domain::case::{
    CaseFilter, CaseRecord, CaseSummary, Cursor, PageRequest, RecordedContact, RecordedDispatch,
    RecordedReferral, paging,
};
use crate::domain::change::CaseOutcome;
use crate::domain::decision::{
    Action, ActionDecision, Assignment, Candidate, CoverStep, Decision, Destination, DutyStatus,
    Purpose, RoutingStatus, RoutingSummary, ServicePointKind, Verdict,
};
use crate::domain::intake::{
    Age, Contact, Coordinates, Intake, Location, NewIntake, Receipt, Reporter, RequestId,
    RiskFacts, Subject, SuicideScreening, limits,
};
use crate::domain::sensitive::Sensitive;
use crate::domain::types::{
    AgeBand, Answer, CaseStatus, Category, Channel, Disability, DispatchStatus, EmergencyAction,
    HotlineAction, Language, Line, Nationality, PlaceType, Priority, Recency, ReferralStatus,
    Relationship, RequestedAction, Sex,
};
use crate::domain::{Error, FieldViolation, province, triage};
use crate::pb;
use crate::routing::directory::{
    Admission, County, Day, DirectoryUpdate, LocalTime, MobileTeam, OpeningHours, ServicePoint,
    Window,
};

/// How far in the future a call's start may lie, for clocks that disagree.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// A domain enumeration with a `referral.v1` counterpart.
trait WireEnum: Sized + Copy {
    /// Converts a wire number; `None` for `*_UNSPECIFIED` and unknown numbers.
    fn from_wire(raw: i32) -> Option<Self>;
    /// Converts to the wire number.
    fn to_wire(self) -> i32;
}

/// Maps a domain enumeration to its generated counterpart. Variants named alike are listed
/// once; differently named ones as `Wire => Domain`.
macro_rules! wire_enum {
    ($name:ident as $pb:ident { $($same:ident),* $(,)? } $(, renamed { $($wire:ident => $domain:ident),* $(,)? })?) => {
        impl WireEnum for $name {
            fn from_wire(raw: i32) -> Option<Self> {
                match pb::$pb::try_from(raw).ok()? {
                    pb::$pb::Unspecified => None,
                    $(pb::$pb::$same => Some(Self::$same),)*
                    $($(pb::$pb::$wire => Some(Self::$domain),)*)?
                }
            }

            fn to_wire(self) -> i32 {
                let wire = match self {
                    $(Self::$same => pb::$pb::$same,)*
                    $($(Self::$domain => pb::$pb::$wire,)*)?
                };
                wire as i32
            }
        }
    };
    ($name:ident { $($same:ident),* $(,)? } $(, renamed { $($wire:ident => $domain:ident),* $(,)? })?) => {
        wire_enum!($name as $name { $($same),* } $(, renamed { $($wire => $domain),* })?);
    };
}

wire_enum!(Line {
    Hotline1480,
    Emergency123
});
wire_enum!(Category {
    ChildAbusePhysical,
    ChildAbuseSexual,
    ChildAbuseEmotional,
    ChildNeglect,
    ChildAtRisk,
    SpouseAbuse,
    OtherDomesticViolence,
    ElderAbuse,
    DisabledPersonAbuse,
    SuicideAttempt,
    SuicidalThoughts,
    RunawayOrExpelled,
    WomenAndGirlsAtRisk,
    StreetAndWorkingChildren,
    AcuteFamilyConflict,
    DivorceCrisis,
    Homelessness,
    Addiction,
    PsychologicalDistress,
    MarriageAndPremarital,
    Parenting,
    Educational,
    DisasterPsychosocial,
    ChronicMentalIllnessCrisis,
    InformationOnly,
    NuisanceOrSilent,
});
wire_enum!(Priority {
    P0Immediate,
    P1Urgent,
    P2Priority,
    P3Routine,
    P4OutsideMandate
});
wire_enum!(CaseStatus {
    Open,
    AwaitingFollowUp,
    Closed
});
wire_enum!(Channel { Voice, Chat });
wire_enum!(Sex {
    Female,
    Male,
    Unknown
});
wire_enum!(AgeBand {
    EarlyChildhood,
    Child,
    YoungAdolescent,
    OlderAdolescent,
    YoungAdult,
    Adult,
    OlderAdult,
    Unknown,
});
wire_enum!(Nationality {
    Iranian,
    AfghanCardHolder,
    OtherForeign,
    Undocumented,
    Unknown
});
wire_enum!(Disability {
    NoneKnown,
    Physical,
    Intellectual,
    Sensory,
    Psychosocial,
    Multiple
});
wire_enum!(Language {
    Persian,
    Azerbaijani,
    Kurdish,
    Arabic,
    Baluchi,
    Luri,
    Gilaki,
    Mazandarani,
    Turkmen,
    DariOrPashto,
    Other,
    Unknown,
});
wire_enum!(
    Relationship { Parent, OtherFamily, Neighbour, Teacher, HealthWorker, Police, Friend, Other },
    renamed { Self_ => OneSelf }
);
wire_enum!(PlaceType {
    Home,
    Street,
    School,
    Park,
    Workplace,
    HealthFacility,
    PublicTransport,
    Other,
    Unknown,
});
wire_enum!(Answer { Yes, No, Unknown });
wire_enum!(Recency {
    Ongoing,
    Last24Hours,
    LastWeek,
    Older,
    Unknown
});
wire_enum!(HotlineAction {
    CounsellingCentreReferral,
    HandOverTo123,
    SpecialisedService
});
wire_enum!(EmergencyAction {
    ResolvedByPhone,
    MobileTeam,
    Placement
});
wire_enum!(ServicePointKind {
    SocialEmergencyCentre,
    CrisisInterventionCentre,
    SocialServiceBase,
    SafeHouse,
    CounsellingCentre,
    SuicideSpecialisedCentre,
    ChildResidentialCentre,
    Police110,
    Ems115,
    ForensicMedicine,
    ProsecutorChildProtection,
});
wire_enum!(Purpose as AssignmentPurpose { Dispatch, Referral, Notification, HandOver });
wire_enum!(DutyStatus {
    Available,
    Busy,
    OffDuty,
    OutOfService
});
wire_enum!(Day as Weekday { Saturday, Sunday, Monday, Tuesday, Wednesday, Thursday, Friday });
wire_enum!(RoutingStatus {
    Routed,
    Unrouted,
    NoDestinationNeeded
});
wire_enum!(ReferralStatus {
    Requested,
    Accepted,
    Rejected,
    InProgress,
    OnHold,
    Completed,
    Failed,
    Cancelled,
});
wire_enum!(CaseOutcome {
    ResolvedByPhone,
    ResolvedOnScene,
    ReferredAndAccepted,
    Admitted,
    ReturnedToFamily,
    JudicialPlacement,
    LostContact,
    Duplicate,
    NotInMandate,
    Death,
});
wire_enum!(DispatchStatus {
    Assigned,
    Acknowledged,
    EnRoute,
    OnScene,
    Transporting,
    Cleared,
    Cancelled,
    Declined,
});

/// Collects the violations of one request.
#[derive(Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// A required enumeration.
    fn enumeration<T: WireEnum>(&mut self, field: &str, raw: i32) -> Option<T> {
        let value = T::from_wire(raw);
        if value.is_none() {
            if raw == 0 {
                self.add(field, "is required (the unspecified value is not accepted)");
            } else {
                self.add(field, format!("has an unknown value {raw}"));
            }
        }
        value
    }

    /// An optional enumeration: `Some(None)` when absent, `None` when present but invalid.
    fn optional_enumeration<T: WireEnum>(
        &mut self,
        field: &str,
        raw: Option<i32>,
    ) -> Option<Option<T>> {
        match raw {
            None => Some(None),
            Some(value) => self.enumeration(field, value).map(Some),
        }
    }

    /// Optional text of at most `max` characters; empty means absent. Short fields may not hold
    /// control characters; long ones (`multiline`) may hold line breaks and tabs.
    fn text(&mut self, field: &str, value: String, max: usize, multiline: bool) -> Option<String> {
        let value = value.trim().to_owned();
        if value.chars().count() > max {
            self.add(field, format!("is longer than {max} characters"));
            return None;
        }
        let bad_char = |c: char| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t'));
        if value.chars().any(bad_char) {
            self.add(field, "contains control characters");
            return None;
        }
        (!value.is_empty()).then_some(value)
    }

    /// Required text of at most `max` characters.
    fn required_text(&mut self, field: &str, value: String, max: usize) -> Option<String> {
        let missing = value.trim().is_empty();
        let value = self.text(field, value, max, false);
        if missing {
            self.add(field, "is required");
        }
        value
    }

    /// Sensitive optional text.
    fn secret(&mut self, field: &str, value: String, max: usize) -> Option<Sensitive<String>> {
        self.text(field, value, max, false).map(Sensitive::new)
    }

    /// An optional phone number: digits with an optional leading `+`.
    fn phone(&mut self, field: &str, value: String) -> Option<Sensitive<String>> {
        let number = self.text(field, value, limits::MAX_PHONE, false)?;
        let digits = number.strip_prefix('+').unwrap_or(&number);
        if digits.len() < 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            self.add(
                field,
                "must be 3 to 32 digits, optionally after a leading +",
            );
            return None;
        }
        Some(Sensitive::new(number))
    }

    /// A required province code.
    fn province(&mut self, field: &str, value: String) -> Option<String> {
        let code = self.required_text(field, value, limits::MAX_SHORT_TEXT)?;
        if province::by_code(&code).is_none() {
            self.add(
                field,
                "is not an ISO 3166-2:IR province code as renumbered in 2020 (IR-00 to IR-30)",
            );
            return None;
        }
        Some(code)
    }

    /// A required message.
    fn required<T>(&mut self, field: &str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.add(field, "is required");
        }
        value
    }

    /// A timestamp, if present.
    fn time(
        &mut self,
        field: &str,
        value: Option<prost_types::Timestamp>,
    ) -> Option<DateTime<Utc>> {
        let value = value?;
        let time = u32::try_from(value.nanos)
            .ok()
            .and_then(|nanos| DateTime::from_timestamp(value.seconds, nanos));
        if time.is_none() {
            self.add(field, "is not a valid timestamp");
        }
        time
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, Error> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ if self.0.is_empty() => Err(Error::internal("conversion failed without a violation")),
            _ => Err(Error::InvalidArgument(self.0)),
        }
    }
}

/// Parses a 1480 intake.
pub(crate) fn hotline_intake(
    request: pb::SubmitReferralRequest,
    received_at: DateTime<Utc>,
    caller: &Caller,
) -> Result<NewIntake, Error> {
    let payload_hash = digest(&request);
    new_intake(
        request.request_id,
        request.intake,
        received_at,
        payload_hash,
        caller,
        |v| {
            v.enumeration::<HotlineAction>("action", request.action)
                .map(RequestedAction::Hotline)
        },
    )
}

/// Parses a 123 intake.
pub(crate) fn emergency_intake(
    request: pb::ReportEmergencyRequest,
    received_at: DateTime<Utc>,
    caller: &Caller,
) -> Result<NewIntake, Error> {
    let payload_hash = digest(&request);
    new_intake(
        request.request_id,
        request.intake,
        received_at,
        payload_hash,
        caller,
        |v| {
            v.enumeration::<EmergencyAction>("action", request.action)
                .map(RequestedAction::Emergency)
        },
    )
}

/// The request's digest, to tell a retry from a different intake under the same request id.
/// prost encodes a message deterministically (fields in number order, no maps here).
fn digest(request: &impl Message) -> [u8; 32] {
    Sha256::digest(request.encode_to_vec()).into()
}

/// Parses the parts both lines share; violations come out in the order of the request's fields.
fn new_intake(
    request_id: String,
    intake: Option<pb::Intake>,
    received_at: DateTime<Utc>,
    payload_hash: [u8; 32],
    caller: &Caller,
    action: impl FnOnce(&mut Violations) -> Option<RequestedAction>,
) -> Result<NewIntake, Error> {
    let mut v = Violations::default();
    let request_id = RequestId::parse(&request_id)
        .map_err(|why| v.add("request_id", why))
        .ok();
    let intake = v
        .required("intake", intake)
        .and_then(|intake| parse_intake(&mut v, intake, received_at));
    let action = action(&mut v);
    let assessment = intake
        .as_ref()
        .and_then(|intake| triage::assess(intake).map_err(|e| v.0.push(e)).ok());
    let parsed = match (request_id, intake, action, assessment) {
        (Some(request_id), Some(intake), Some(action), Some(assessment)) => Some(NewIntake {
            request_id,
            payload_hash,
            action,
            intake,
            assessment,
            received_at,
            requester: caller.requester(crate::access::Operation::submit(action.line())),
        }),
        _ => None,
    };
    v.finish(parsed)
}

fn parse_intake(v: &mut Violations, raw: pb::Intake, now: DateTime<Utc>) -> Option<Intake> {
    let contact = v
        .required("intake.contact", raw.contact)
        .and_then(|c| parse_contact(v, c, now));
    let reporter = v
        .required("intake.reporter", raw.reporter)
        .and_then(|r| parse_reporter(v, r));
    let subjects = parse_subjects(v, raw.subjects);
    let location = v
        .required("intake.location", raw.location)
        .and_then(|l| parse_location(v, l));
    let primary = v.enumeration::<Category>("intake.primary_category", raw.primary_category);
    let secondary = parse_secondary(v, &raw.secondary_categories, primary);
    let risk = v
        .required("intake.risk", raw.risk)
        .and_then(|r| parse_risk(v, r));
    let narrative = v.text(
        "intake.narrative",
        raw.narrative,
        limits::MAX_NARRATIVE,
        true,
    );
    let priority_override =
        v.optional_enumeration::<Priority>("intake.priority_override", raw.priority_override);
    let override_reason = v.text(
        "intake.priority_override_reason",
        raw.priority_override_reason,
        limits::MAX_REASON,
        true,
    );
    Some(Intake {
        contact: contact?,
        reporter: reporter?,
        subjects: subjects?,
        location: location?,
        primary_category: primary?,
        secondary_categories: secondary?,
        risk: risk?,
        narrative: Sensitive::new(narrative.unwrap_or_default()),
        priority_override: priority_override?,
        priority_override_reason: override_reason,
    })
}

fn parse_contact(v: &mut Violations, raw: pb::Contact, now: DateTime<Utc>) -> Option<Contact> {
    let f = |name: &str| format!("intake.contact.{name}");
    let external_call_id = v.required_text(
        &f("external_call_id"),
        raw.external_call_id,
        limits::MAX_SHORT_TEXT,
    );
    let answering_province = v.province(&f("answering_province"), raw.answering_province);
    let overflow_from_province = if raw.overflow_from_province.trim().is_empty() {
        Some(None)
    } else {
        v.province(&f("overflow_from_province"), raw.overflow_from_province)
            .map(Some)
    };
    let operator_id = v.required_text(&f("operator_id"), raw.operator_id, limits::MAX_SHORT_TEXT);
    let channel = v.enumeration::<Channel>(&f("channel"), raw.channel);
    let started_at = v.required(&f("started_at"), raw.started_at);
    let started_at = v.time(&f("started_at"), started_at);
    let answered_at = v.time(&f("answered_at"), raw.answered_at);
    let ended_at = v.time(&f("ended_at"), raw.ended_at);
    if let Some(started) = started_at {
        if started > now + CLOCK_SKEW {
            v.add(f("started_at"), "is in the future");
        }
        if answered_at.is_some_and(|t| t < started) {
            v.add(f("answered_at"), "is before started_at");
        }
        if ended_at.is_some_and(|t| t < started) {
            v.add(f("ended_at"), "is before started_at");
        }
    }
    let caller_number = if raw.caller_number.trim().is_empty() {
        None
    } else {
        let number = v.phone(&f("caller_number"), raw.caller_number);
        number.as_ref()?;
        number
    };
    Some(Contact {
        external_call_id: external_call_id?,
        answering_province: answering_province?,
        overflow_from_province: overflow_from_province?,
        operator_id: operator_id?,
        channel: channel?,
        started_at: started_at?,
        answered_at,
        ended_at,
        caller_number,
    })
}

fn parse_reporter(v: &mut Violations, raw: pb::Reporter) -> Option<Reporter> {
    let f = |name: &str| format!("intake.reporter.{name}");
    let relationship = v.enumeration::<Relationship>(&f("relationship"), raw.relationship);
    let name = v.secret(&f("name"), raw.name, limits::MAX_NAME);
    if raw.anonymous && name.is_some() {
        v.add(f("name"), "must be empty when the reporter is anonymous");
    }
    let callback_number = if raw.callback_number.trim().is_empty() {
        None
    } else {
        v.phone(&f("callback_number"), raw.callback_number)
    };
    if callback_number.is_some() && !raw.callback_consent {
        v.add(
            f("callback_number"),
            "needs callback_consent: a reporter who did not agree is not called back",
        );
    }
    Some(Reporter {
        relationship: relationship?,
        anonymous: raw.anonymous,
        name,
        callback_consent: raw.callback_consent,
        callback_number,
    })
}

fn parse_subjects(v: &mut Violations, raw: Vec<pb::Subject>) -> Option<Vec<Subject>> {
    if raw.is_empty() {
        v.add("intake.subjects", "needs at least one subject");
        return None;
    }
    if raw.len() > limits::MAX_SUBJECTS {
        v.add(
            "intake.subjects",
            format!("has more than {} subjects", limits::MAX_SUBJECTS),
        );
        return None;
    }
    let subjects: Vec<Option<Subject>> = raw
        .into_iter()
        .enumerate()
        .map(|(i, s)| parse_subject(v, &format!("intake.subjects[{i}]"), s))
        .collect();
    subjects.into_iter().collect()
}

fn parse_subject(v: &mut Violations, path: &str, raw: pb::Subject) -> Option<Subject> {
    let f = |name: &str| format!("{path}.{name}");
    let age = match raw.age {
        None => {
            v.add(f("age"), "is required: send age_years or age_band");
            None
        }
        Some(pb::subject::Age::AgeYears(years)) if years > limits::MAX_AGE_YEARS => {
            v.add(f("age_years"), "is over 120");
            None
        }
        Some(pb::subject::Age::AgeYears(years)) => Some(Age::Years(years)),
        Some(pb::subject::Age::AgeBand(band)) => v
            .enumeration::<AgeBand>(&f("age_band"), band)
            .map(Age::Band),
    };
    let implied_minor = match age {
        Some(Age::Years(years)) => Some(years < 18),
        Some(Age::Band(band)) => band.is_minor(),
        None => None,
    };
    if let (Some(implied), Some(sent)) = (implied_minor, raw.minor)
        && implied != sent
    {
        v.add(f("minor"), "contradicts the subject's age");
    }
    let sex = v.enumeration::<Sex>(&f("sex"), raw.sex);
    let nationality = v.enumeration::<Nationality>(&f("nationality"), raw.nationality);
    let disability = v.enumeration::<Disability>(&f("disability"), raw.disability);
    let language = v.enumeration::<Language>(&f("language"), raw.language);
    let name = v.secret(&f("name"), raw.name, limits::MAX_NAME);
    let national_id = v.secret(&f("national_id"), raw.national_id, limits::MAX_SHORT_TEXT);
    if national_id.as_ref().is_some_and(|id| {
        !id.expose().bytes().all(|b| b.is_ascii_digit()) || id.expose().len() > 16
    }) {
        v.add(f("national_id"), "must be at most 16 digits");
    }
    Some(Subject {
        age: age?,
        minor: implied_minor.or(raw.minor),
        sex: sex?,
        nationality: nationality?,
        disability: disability?,
        language: language?,
        pregnant: raw.pregnant,
        name,
        national_id,
    })
}

fn parse_location(v: &mut Violations, raw: pb::Location) -> Option<Location> {
    let f = |name: &str| format!("intake.location.{name}");
    let province = v.province(&f("province"), raw.province);
    let county = v.required_text(&f("county"), raw.county, limits::MAX_SHORT_TEXT);
    let district = v.text(&f("district"), raw.district, limits::MAX_SHORT_TEXT, false);
    let neighbourhood = v.text(
        &f("neighbourhood"),
        raw.neighbourhood,
        limits::MAX_SHORT_TEXT,
        false,
    );
    let address = v.secret(&f("address"), raw.address, limits::MAX_ADDRESS);
    let landmark = v.text(&f("landmark"), raw.landmark, limits::MAX_SHORT_TEXT, false);
    let coordinates = raw.coordinates.and_then(|c| {
        let valid_lat = c.latitude.is_finite() && (-90.0..=90.0).contains(&c.latitude);
        let valid_lon = c.longitude.is_finite() && (-180.0..=180.0).contains(&c.longitude);
        if !valid_lat {
            v.add(f("coordinates.latitude"), "must be between -90 and 90");
        }
        if !valid_lon {
            v.add(f("coordinates.longitude"), "must be between -180 and 180");
        }
        (valid_lat && valid_lon).then(|| {
            Sensitive::new(Coordinates {
                latitude: c.latitude,
                longitude: c.longitude,
            })
        })
    });
    let place_type = v.enumeration::<PlaceType>(&f("place_type"), raw.place_type);
    Some(Location {
        province: province?,
        county: county?,
        district,
        neighbourhood,
        address,
        landmark,
        coordinates,
        place_type: place_type?,
    })
}

fn parse_secondary(
    v: &mut Violations,
    raw: &[i32],
    primary: Option<Category>,
) -> Option<Vec<Category>> {
    if raw.len() > limits::MAX_SECONDARY_CATEGORIES {
        v.add(
            "intake.secondary_categories",
            format!(
                "has more than {} categories",
                limits::MAX_SECONDARY_CATEGORIES
            ),
        );
        return None;
    }
    let mut categories = Vec::with_capacity(raw.len());
    let mut valid = true;
    for (i, &value) in raw.iter().enumerate() {
        let field = format!("intake.secondary_categories[{i}]");
        match v.enumeration::<Category>(&field, value) {
            Some(c) if Some(c) == primary => {
                v.add(field, "repeats the primary category");
                valid = false;
            }
            Some(c) if categories.contains(&c) => {
                v.add(field, "repeats an earlier secondary category");
                valid = false;
            }
            Some(c) => categories.push(c),
            None => valid = false,
        }
    }
    valid.then_some(categories)
}

fn parse_risk(v: &mut Violations, raw: pb::RiskFacts) -> Option<RiskFacts> {
    let f = |name: &str| format!("intake.risk.{name}");
    let screening = match raw.suicide_screening {
        None => Some(None),
        Some(s) => {
            let g = |name: &str| format!("intake.risk.suicide_screening.{name}");
            let wish = v.enumeration::<Answer>(&g("wish_to_be_dead"), s.wish_to_be_dead);
            let thoughts = v.enumeration::<Answer>(&g("suicidal_thoughts"), s.suicidal_thoughts);
            let method = v.enumeration::<Answer>(&g("method"), s.method);
            let intent = v.enumeration::<Answer>(&g("intent"), s.intent);
            let plan = v.enumeration::<Answer>(&g("plan"), s.plan);
            let behaviour =
                v.enumeration::<Answer>(&g("behaviour_last_3_months"), s.behaviour_last_3_months);
            Some(Some(Sensitive::new(SuicideScreening {
                wish_to_be_dead: wish?,
                suicidal_thoughts: thoughts?,
                method: method?,
                intent: intent?,
                plan: plan?,
                behaviour_last_3_months: behaviour?,
            })))
        }
    };
    let perpetrator_relationship = v.secret(
        &f("perpetrator_relationship"),
        raw.perpetrator_relationship,
        limits::MAX_SHORT_TEXT,
    );
    let recency = v.enumeration::<Recency>(&f("recency"), raw.recency);
    Some(RiskFacts {
        suicide_screening: screening?,
        attempt_in_progress: raw.attempt_in_progress,
        violence_ongoing: raw.violence_ongoing,
        weapon_present: raw.weapon_present,
        injury_or_medical_need: raw.injury_or_medical_need,
        perpetrator_present: raw.perpetrator_present,
        perpetrator_relationship,
        children_in_household: raw.children_in_household,
        risk_to_team: raw.risk_to_team,
        intoxication: raw.intoxication,
        recency: recency?,
    })
}

/// Parses a case id.
pub(crate) fn case_id(field: &str, raw: &str) -> Result<Uuid, Error> {
    if raw.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    Uuid::try_parse(raw).map_err(|_| Error::invalid(field, "is not a UUID"))
}

/// Parses a case list request into its filter and page.
pub(crate) fn list_request(raw: pb::ListCasesRequest) -> Result<(CaseFilter, PageRequest), Error> {
    let mut v = Violations::default();
    let line = v.optional_enumeration::<Line>("line", raw.line);
    let priority = v.optional_enumeration::<Priority>("priority", raw.priority);
    let category = v.optional_enumeration::<Category>("category", raw.category);
    let status = v.optional_enumeration::<CaseStatus>("status", raw.status);
    let province = if raw.province.is_empty() {
        Some(None)
    } else {
        v.province("province", raw.province).map(Some)
    };
    let county = v.text("county", raw.county, limits::MAX_SHORT_TEXT, false);
    if county.is_some() && province == Some(None) {
        v.add(
            "county",
            "needs province: county names repeat across provinces",
        );
    }
    let created_from = v.time("created_from", raw.created_from);
    let created_before = v.time("created_before", raw.created_before);
    if let (Some(from), Some(before)) = (created_from, created_before)
        && before <= from
    {
        v.add("created_before", "must be after created_from");
    }
    let size = match raw.page_size {
        0 => Some(paging::DEFAULT_PAGE_SIZE),
        n if n < 0 => {
            v.add("page_size", "must not be negative");
            None
        }
        n if n as usize > paging::MAX_PAGE_SIZE => {
            v.add(
                "page_size",
                format!("must be at most {}", paging::MAX_PAGE_SIZE),
            );
            None
        }
        n => Some(n as usize),
    };
    let filter = match (line, priority, category, status, province) {
        (Some(line), Some(priority), Some(category), Some(status), Some(province)) => {
            Some(CaseFilter {
                line,
                priority,
                category,
                province,
                county,
                status,
                created_from,
                created_before,
            })
        }
        _ => None,
    };
    let after = match (&filter, raw.page_token.is_empty()) {
        (_, true) => Some(None),
        (Some(filter), false) => match decode_page_token(&raw.page_token, filter) {
            Ok(after) => Some(Some(after)),
            Err(why) => {
                v.add("page_token", why);
                None
            }
        },
        (None, false) => None,
    };
    let parsed = match (filter, size, after) {
        (Some(filter), Some(size), Some(after)) => Some((filter, PageRequest { size, after })),
        _ => None,
    };
    v.finish(parsed)
}

/// A page token: the position of the page's last case and a fingerprint of the filters, so a
/// token is not silently reused with other filters.
pub(crate) fn page_token(last: Cursor, filter: &CaseFilter) -> String {
    let mut bytes = last.created_at.timestamp_micros().to_be_bytes().to_vec();
    bytes.extend_from_slice(last.case_id.as_bytes());
    bytes.extend_from_slice(&filter_fingerprint(filter));
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_page_token(token: &str, filter: &CaseFilter) -> Result<Cursor, &'static str> {
    const FOREIGN: &str = "is not a token this service issued";
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| FOREIGN)?;
    let micros: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or(FOREIGN)?;
    let id = bytes.get(8..24).ok_or(FOREIGN)?;
    let fingerprint = bytes.get(24..).ok_or(FOREIGN)?;
    if fingerprint != filter_fingerprint(filter) {
        return Err("was issued for other filters; send the same filters as the first page");
    }
    let created_at = DateTime::from_timestamp_micros(i64::from_be_bytes(micros)).ok_or(FOREIGN)?;
    let case_id = Uuid::from_slice(id).map_err(|_| FOREIGN)?;
    Ok(Cursor {
        created_at,
        case_id,
    })
}

fn filter_fingerprint(filter: &CaseFilter) -> [u8; 8] {
    let digest = Sha256::digest(format!("{filter:?}").as_bytes());
    let mut fingerprint = [0; 8];
    fingerprint.copy_from_slice(&digest[..8]);
    fingerprint
}

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

fn expose(value: &Option<Sensitive<String>>) -> String {
    value
        .as_ref()
        .map(|v| v.expose().clone())
        .unwrap_or_default()
}

impl From<Receipt> for pb::IntakeReceipt {
    fn from(receipt: Receipt) -> Self {
        Self {
            case_id: receipt.case_id.to_string(),
            reference: receipt.reference,
            priority: receipt.priority.to_wire(),
            version: receipt.version,
            replayed: receipt.replayed,
            computed_priority: receipt.computed_priority.to_wire(),
            triage_reasons: receipt.triage_reasons,
            routing: receipt.routing.map(Into::into),
        }
    }
}

impl From<&Assignment> for pb::Assignment {
    fn from(a: &Assignment) -> Self {
        let (destination, name, kind) = match &a.destination {
            Destination::Team { id, name } => (
                pb::assignment::Destination::TeamId(id.clone()),
                name.clone(),
                0,
            ),
            Destination::ServicePoint { id, name, kind } => (
                pb::assignment::Destination::ServicePointId(id.clone()),
                name.clone(),
                kind.to_wire(),
            ),
        };
        Self {
            purpose: a.purpose.to_wire(),
            destination: Some(destination),
            name,
            service_point_kind: kind,
        }
    }
}

impl From<RoutingSummary> for pb::RoutingSummary {
    fn from(s: RoutingSummary) -> Self {
        Self {
            policy_version: s.policy_version,
            rule_id: s.rule_id,
            assignments: s.assignments.iter().map(Into::into).collect(),
            unrouted: s.unrouted,
        }
    }
}

impl From<&Candidate> for pb::RoutingCandidate {
    fn from(c: &Candidate) -> Self {
        let (step, province) = match &c.step {
            CoverStep::IncidentCounty => (pb::CoverStep::IncidentCounty, String::new()),
            CoverStep::DesignatedCounty => (pb::CoverStep::DesignatedCounty, String::new()),
            CoverStep::Province => (pb::CoverStep::Province, String::new()),
            CoverStep::NeighbouringProvince(p) => (pb::CoverStep::NeighbouringProvince, p.clone()),
        };
        let (verdict, detail) = match &c.verdict {
            Verdict::Chosen => (pb::CandidateVerdict::Chosen, String::new()),
            Verdict::RankedLower => (pb::CandidateVerdict::RankedLower, String::new()),
            Verdict::Closed => (pb::CandidateVerdict::Closed, String::new()),
            Verdict::Full => (pb::CandidateVerdict::Full, String::new()),
            Verdict::NotServingCategory => {
                (pb::CandidateVerdict::NotServingCategory, String::new())
            }
            Verdict::Ineligible(why) => (pb::CandidateVerdict::Ineligible, why.clone()),
            Verdict::Unavailable(status) => {
                let status: &'static str = (*status).into();
                (pb::CandidateVerdict::Unavailable, status.to_owned())
            }
            Verdict::Excluded => (pb::CandidateVerdict::Excluded, String::new()),
        };
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            cover_step: step as i32,
            cover_province: province,
            distance_km: c.distance_km,
            verdict: verdict as i32,
            detail,
        }
    }
}

impl From<&ActionDecision> for pb::ActionOutcome {
    fn from(a: &ActionDecision) -> Self {
        let (action, kind) = match &a.action {
            Action::DispatchMobileTeam => (pb::ActionType::DispatchMobileTeam, 0),
            Action::ReferTo { kind } => (pb::ActionType::ReferTo, kind.to_wire()),
            Action::Notify { body, .. } => (pb::ActionType::Notify, body.to_wire()),
            Action::HandOverTo123 => (
                pb::ActionType::HandOverTo123,
                ServicePointKind::SocialEmergencyCentre.to_wire(),
            ),
        };
        Self {
            action: action as i32,
            kind,
            not_applicable: a.not_applicable.clone().unwrap_or_default(),
            assignment: a.destination.as_ref().map(|destination| {
                let assignment = Assignment {
                    purpose: a.action.purpose(),
                    destination: destination.clone(),
                };
                (&assignment).into()
            }),
            candidates: a.candidates.iter().map(Into::into).collect(),
        }
    }
}

impl From<&Decision> for pb::RoutingDecision {
    fn from(d: &Decision) -> Self {
        Self {
            policy_version: d.policy_version,
            rule_id: d.rule_id.clone(),
            rule_description: d.rule_description.clone(),
            actions: d.actions.iter().map(Into::into).collect(),
            unrouted: d.unrouted(),
        }
    }
}

impl From<RecordedReferral> for pb::Referral {
    fn from(r: RecordedReferral) -> Self {
        Self {
            referral_id: r.referral_id.to_string(),
            service_point_id: r.service_point_id,
            purpose: r.purpose.to_wire(),
            status: r.status.to_wire(),
            version: r.version,
            created_at: Some(timestamp(r.created_at)),
            reason: r.reason.unwrap_or_default(),
        }
    }
}

impl From<RecordedDispatch> for pb::TeamDispatch {
    fn from(d: RecordedDispatch) -> Self {
        Self {
            dispatch_id: d.dispatch_id.to_string(),
            team_id: d.team_id,
            status: d.status.to_wire(),
            version: d.version,
            created_at: Some(timestamp(d.created_at)),
            steps: d
                .steps
                .into_iter()
                .map(|step| pb::DispatchStep {
                    status: step.status.to_wire(),
                    occurred_at: Some(timestamp(step.occurred_at)),
                    position: step.position.map(|(latitude, longitude)| pb::Coordinates {
                        latitude,
                        longitude,
                    }),
                })
                .collect(),
            reason: d.reason.unwrap_or_default(),
        }
    }
}

impl From<CaseSummary> for pb::CaseSummary {
    fn from(case: CaseSummary) -> Self {
        Self {
            case_id: case.case_id.to_string(),
            reference: case.reference,
            line: case.line.to_wire(),
            status: case.status.to_wire(),
            priority: case.priority.to_wire(),
            primary_category: case.primary_category.to_wire(),
            province: case.province,
            county: case.county,
            minors_involved: case.minors_involved,
            version: case.version,
            created_at: Some(timestamp(case.created_at)),
            updated_at: Some(timestamp(case.updated_at)),
        }
    }
}

impl From<&Contact> for pb::Contact {
    fn from(c: &Contact) -> Self {
        Self {
            external_call_id: c.external_call_id.clone(),
            answering_province: c.answering_province.clone(),
            overflow_from_province: c.overflow_from_province.clone().unwrap_or_default(),
            operator_id: c.operator_id.clone(),
            channel: c.channel.to_wire(),
            started_at: Some(timestamp(c.started_at)),
            answered_at: c.answered_at.map(timestamp),
            ended_at: c.ended_at.map(timestamp),
            caller_number: expose(&c.caller_number),
        }
    }
}

impl From<&Subject> for pb::Subject {
    fn from(s: &Subject) -> Self {
        Self {
            age: Some(match s.age {
                Age::Years(years) => pb::subject::Age::AgeYears(years),
                Age::Band(band) => pb::subject::Age::AgeBand(band.to_wire()),
            }),
            minor: s.minor,
            sex: s.sex.to_wire(),
            nationality: s.nationality.to_wire(),
            disability: s.disability.to_wire(),
            language: s.language.to_wire(),
            pregnant: s.pregnant,
            name: expose(&s.name),
            national_id: expose(&s.national_id),
        }
    }
}

impl From<&Location> for pb::Location {
    fn from(location: &Location) -> Self {
        Self {
            province: location.province.clone(),
            county: location.county.clone(),
            district: location.district.clone().unwrap_or_default(),
            neighbourhood: location.neighbourhood.clone().unwrap_or_default(),
            address: expose(&location.address),
            landmark: location.landmark.clone().unwrap_or_default(),
            coordinates: location.coordinates.as_ref().map(|c| pb::Coordinates {
                latitude: c.expose().latitude,
                longitude: c.expose().longitude,
            }),
            place_type: location.place_type.to_wire(),
        }
    }
}

/// A time on the wire.
pub(crate) fn wire_time(at: DateTime<Utc>) -> prost_types::Timestamp {
    timestamp(at)
}

impl From<&Intake> for pb::Intake {
    fn from(i: &Intake) -> Self {
        let location = &i.location;
        let risk = &i.risk;
        Self {
            contact: Some((&i.contact).into()),
            reporter: Some(pb::Reporter {
                relationship: i.reporter.relationship.to_wire(),
                anonymous: i.reporter.anonymous,
                name: expose(&i.reporter.name),
                callback_consent: i.reporter.callback_consent,
                callback_number: expose(&i.reporter.callback_number),
            }),
            subjects: i.subjects.iter().map(Into::into).collect(),
            location: Some(location.into()),
            primary_category: i.primary_category.to_wire(),
            secondary_categories: i.secondary_categories.iter().map(|c| c.to_wire()).collect(),
            risk: Some(pb::RiskFacts {
                suicide_screening: risk.suicide_screening.as_ref().map(|s| {
                    let s = s.expose();
                    pb::SuicideScreening {
                        wish_to_be_dead: s.wish_to_be_dead.to_wire(),
                        suicidal_thoughts: s.suicidal_thoughts.to_wire(),
                        method: s.method.to_wire(),
                        intent: s.intent.to_wire(),
                        plan: s.plan.to_wire(),
                        behaviour_last_3_months: s.behaviour_last_3_months.to_wire(),
                    }
                }),
                attempt_in_progress: risk.attempt_in_progress,
                violence_ongoing: risk.violence_ongoing,
                weapon_present: risk.weapon_present,
                injury_or_medical_need: risk.injury_or_medical_need,
                perpetrator_present: risk.perpetrator_present,
                perpetrator_relationship: expose(&risk.perpetrator_relationship),
                children_in_household: risk.children_in_household,
                risk_to_team: risk.risk_to_team,
                intoxication: risk.intoxication,
                recency: risk.recency.to_wire(),
            }),
            narrative: i.narrative.expose().clone(),
            priority_override: i.priority_override.map(Priority::to_wire),
            priority_override_reason: i.priority_override_reason.clone().unwrap_or_default(),
        }
    }
}

impl From<RecordedContact> for pb::RecordedContact {
    fn from(c: RecordedContact) -> Self {
        Self {
            contact_id: c.contact_id.to_string(),
            line: c.line.to_wire(),
            contact: Some((&c.contact).into()),
            recorded_at: Some(timestamp(c.recorded_at)),
        }
    }
}

impl From<CaseRecord> for pb::Case {
    fn from(case: CaseRecord) -> Self {
        let requested_action = Some(match case.action {
            RequestedAction::Hotline(a) => pb::case::RequestedAction::HotlineAction(a.to_wire()),
            RequestedAction::Emergency(a) => {
                pb::case::RequestedAction::EmergencyAction(a.to_wire())
            }
        });
        Self {
            secondary_categories: case
                .intake
                .secondary_categories
                .iter()
                .map(|c| c.to_wire())
                .collect(),
            computed_priority: case.assessment.computed.to_wire(),
            triage_reasons: case.assessment.reasons.clone(),
            priority_override_reason: case
                .intake
                .priority_override_reason
                .clone()
                .unwrap_or_default(),
            intake: Some((&case.intake).into()),
            requested_action,
            contacts: case.contacts.into_iter().map(Into::into).collect(),
            routing_status: case.routing_status.to_wire(),
            routing: case.routing.as_ref().map(Into::into),
            reroutes: case.reroutes.iter().map(Into::into).collect(),
            outcome: case.outcome.map(|o| o.to_wire()).unwrap_or_default(),
            notes: case
                .notes
                .into_iter()
                .map(|n| pb::Note {
                    note_id: n.note_id.to_string(),
                    actor: n.actor,
                    created_at: Some(timestamp(n.created_at)),
                    text: n.text.into_inner(),
                })
                .collect(),
            follow_ups: case
                .follow_ups
                .into_iter()
                .map(|f| pb::FollowUp {
                    follow_up_id: f.follow_up_id.to_string(),
                    due_at: Some(timestamp(f.due_at)),
                    reason: f.reason,
                    done_at: f.done_at.map(timestamp),
                    outcome: f.outcome.map(Sensitive::into_inner).unwrap_or_default(),
                })
                .collect(),
            referrals: case.referrals.into_iter().map(Into::into).collect(),
            dispatches: case.dispatches.into_iter().map(Into::into).collect(),
            summary: Some(case.summary.into()),
        }
    }
}

/// Parses a centre's occupancy report.
pub(crate) fn occupancy_update(raw: pb::UpdateOccupancyRequest) -> Result<DirectoryUpdate, Error> {
    let mut v = Violations::default();
    let id = v.required_text(
        "service_point_id",
        raw.service_point_id,
        limits::MAX_SHORT_TEXT,
    );
    v.finish(id.map(|service_point_id| DirectoryUpdate::Occupancy {
        service_point_id,
        occupancy: raw.occupancy,
    }))
}

/// Parses a team's duty-status report.
pub(crate) fn team_update(raw: pb::UpdateTeamStatusRequest) -> Result<DirectoryUpdate, Error> {
    let mut v = Violations::default();
    let id = v.required_text("team_id", raw.team_id, limits::MAX_SHORT_TEXT);
    let status = v.enumeration::<DutyStatus>("status", raw.status);
    let position = match raw.position {
        None => Some(None),
        some => v.position("position", some).map(Some),
    };
    let parsed = match (id, status, position) {
        (Some(team_id), Some(status), Some(position)) => Some(DirectoryUpdate::Team {
            team_id,
            status,
            position,
        }),
        _ => None,
    };
    v.finish(parsed)
}

/// Parses a directory list's filter: a required province, an optional county.
pub(crate) fn directory_filter(
    province: String,
    county: String,
) -> Result<(String, Option<String>), Error> {
    let mut v = Violations::default();
    let province = v.province("province", province);
    let county = v.text("county", county, limits::MAX_SHORT_TEXT, false);
    v.finish(province.map(|p| (p, county)))
}

/// Parses an optional service point kind.
pub(crate) fn optional_kind(raw: Option<i32>) -> Result<Option<ServicePointKind>, Error> {
    let mut v = Violations::default();
    let kind = v.optional_enumeration::<ServicePointKind>("kind", raw);
    v.finish(kind)
}

/// Parses a required id.
pub(crate) fn required_id(field: &str, raw: String) -> Result<String, Error> {
    let mut v = Violations::default();
    let id = v.required_text(field, raw, limits::MAX_SHORT_TEXT);
    v.finish(id)
}

impl From<&ServicePoint> for pb::ServicePoint {
    fn from(p: &ServicePoint) -> Self {
        let (always_open, windows) = match &p.hours {
            OpeningHours::AlwaysOpen => (true, Vec::new()),
            OpeningHours::Weekly(windows) => (
                false,
                windows
                    .iter()
                    .map(|w| pb::OpeningWindow {
                        days: w.days.iter().map(|d| d.to_wire()).collect(),
                        from: w.from.into(),
                        to: w.to.into(),
                    })
                    .collect(),
            ),
        };
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            kind: p.kind.to_wire(),
            province: p.province.clone(),
            county: p.county.clone(),
            position: Some(pb::Coordinates {
                latitude: p.lat,
                longitude: p.lon,
            }),
            categories: p.categories.iter().map(|c| c.to_wire()).collect(),
            always_open,
            windows,
            capacity: p.capacity,
            occupancy: p.occupancy,
            admission: Some(pb::Admission {
                sexes: p.admission.sexes.iter().map(|s| s.to_wire()).collect(),
                min_age: p.admission.min_age,
                max_age: p.admission.max_age,
                accepts_minors: p.admission.accepts_minors,
                accepts_women_with_children: p.admission.accepts_women_with_children,
            }),
        }
    }
}

impl From<&MobileTeam> for pb::MobileTeam {
    fn from(t: &MobileTeam) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            province: t.province.clone(),
            base_county: t.base_county.clone(),
            status: t.status.to_wire(),
            position: t.position.map(|(latitude, longitude)| pb::Coordinates {
                latitude,
                longitude,
            }),
            load: t.load,
        }
    }
}

impl Violations {
    /// A required position.
    fn position(&mut self, field: &str, raw: Option<pb::Coordinates>) -> Option<(f64, f64)> {
        let position = self.required(field, raw)?;
        let valid = position.latitude.is_finite()
            && position.longitude.is_finite()
            && (-90.0..=90.0).contains(&position.latitude)
            && (-180.0..=180.0).contains(&position.longitude);
        if !valid {
            self.add(
                field,
                "must be a latitude from -90 to 90 and a longitude from -180 to 180",
            );
        }
        valid.then_some((position.latitude, position.longitude))
    }

    /// A list of required enumerations.
    fn enumerations<T: WireEnum>(&mut self, field: &str, raw: &[i32]) -> Option<Vec<T>> {
        let values: Vec<Option<T>> = raw
            .iter()
            .enumerate()
            .map(|(i, &value)| self.enumeration(&format!("{field}[{i}]"), value))
            .collect();
        values.into_iter().collect()
    }
}

/// Parses a county to add or update.
pub(crate) fn county(raw: Option<pb::County>) -> Result<County, Error> {
    let mut v = Violations::default();
    let parsed = v.required("county", raw).and_then(|c| {
        let province = v.province("county.province", c.province);
        let name_en = v.required_text("county.name_en", c.name_en, limits::MAX_SHORT_TEXT);
        let name_fa = v.required_text("county.name_fa", c.name_fa, limits::MAX_SHORT_TEXT);
        let seat = v.position("county.seat", c.seat);
        let covered_by = v.text(
            "county.covered_by",
            c.covered_by,
            limits::MAX_SHORT_TEXT,
            false,
        );
        Some(County {
            province: province?,
            name_en: name_en?,
            name_fa: name_fa?,
            lat: seat?.0,
            lon: seat?.1,
            covered_by,
        })
    });
    v.finish(parsed)
}

/// Parses a service point to add or update.
pub(crate) fn service_point(raw: Option<pb::ServicePoint>) -> Result<ServicePoint, Error> {
    let mut v = Violations::default();
    let parsed = v.required("service_point", raw).and_then(|p| {
        let f = |name: &str| format!("service_point.{name}");
        let id = v.required_text(&f("id"), p.id, limits::MAX_SHORT_TEXT);
        let name = v.required_text(&f("name"), p.name, limits::MAX_SHORT_TEXT);
        let kind = v.enumeration::<ServicePointKind>(&f("kind"), p.kind);
        let province = v.province(&f("province"), p.province);
        let county = v.required_text(&f("county"), p.county, limits::MAX_SHORT_TEXT);
        let position = v.position(&f("position"), p.position);
        let categories = v.enumerations::<Category>(&f("categories"), &p.categories);
        let hours = match (p.always_open, p.windows.is_empty()) {
            (true, true) => Some(OpeningHours::AlwaysOpen),
            (true, false) => {
                v.add(f("windows"), "must be empty when always_open is set");
                None
            }
            (false, true) => {
                v.add(f("windows"), "are required unless always_open is set");
                None
            }
            (false, false) => {
                let windows: Vec<Option<Window>> = p
                    .windows
                    .into_iter()
                    .enumerate()
                    .map(|(i, w)| {
                        let g = |name: &str| format!("service_point.windows[{i}].{name}");
                        if w.days.is_empty() {
                            v.add(g("days"), "needs at least one day");
                        }
                        let days = v.enumerations::<Day>(&g("days"), &w.days);
                        let mut time = |name: &str, text: String| {
                            LocalTime::try_from(text)
                                .map_err(|_| v.add(g(name), "must be a time of day as HH:MM"))
                                .ok()
                        };
                        let from = time("from", w.from);
                        let to = time("to", w.to);
                        Some(Window {
                            days: days.filter(|d| !d.is_empty())?,
                            from: from?,
                            to: to?,
                        })
                    })
                    .collect();
                windows
                    .into_iter()
                    .collect::<Option<Vec<_>>>()
                    .map(OpeningHours::Weekly)
            }
        };
        if p.capacity.is_some_and(|c| p.occupancy > c) {
            v.add(f("occupancy"), "is more than the capacity");
        }
        let admission = p.admission.unwrap_or_default();
        let sexes = v.enumerations::<Sex>(&f("admission.sexes"), &admission.sexes);
        if let (Some(min), Some(max)) = (admission.min_age, admission.max_age)
            && min > max
        {
            v.add(f("admission.max_age"), "is below min_age");
        }
        Some(ServicePoint {
            id: id?,
            name: name?,
            kind: kind?,
            province: province?,
            county: county?,
            lat: position?.0,
            lon: position?.1,
            categories: categories?,
            hours: hours?,
            capacity: p.capacity,
            occupancy: p.occupancy,
            admission: Admission {
                sexes: sexes?,
                min_age: admission.min_age,
                max_age: admission.max_age,
                accepts_minors: admission.accepts_minors,
                accepts_women_with_children: admission.accepts_women_with_children,
            },
        })
    });
    v.finish(parsed)
}

/// Parses a mobile team to add or update.
pub(crate) fn mobile_team(raw: Option<pb::MobileTeam>) -> Result<MobileTeam, Error> {
    let mut v = Violations::default();
    let parsed = v.required("team", raw).and_then(|t| {
        let id = v.required_text("team.id", t.id, limits::MAX_SHORT_TEXT);
        let name = v.required_text("team.name", t.name, limits::MAX_SHORT_TEXT);
        let province = v.province("team.province", t.province);
        let base_county =
            v.required_text("team.base_county", t.base_county, limits::MAX_SHORT_TEXT);
        let status = v.enumeration::<DutyStatus>("team.status", t.status);
        let position = match t.position {
            None => Some(None),
            some => v.position("team.position", some).map(Some),
        };
        Some(MobileTeam {
            id: id?,
            name: name?,
            province: province?,
            base_county: base_county?,
            status: status?,
            position: position?,
            load: t.load,
        })
    });
    v.finish(parsed)
}

impl From<&County> for pb::County {
    fn from(c: &County) -> Self {
        Self {
            province: c.province.clone(),
            name_en: c.name_en.clone(),
            name_fa: c.name_fa.clone(),
            seat: Some(pb::Coordinates {
                latitude: c.lat,
                longitude: c.lon,
            }),
            covered_by: c.covered_by.clone().unwrap_or_default(),
        }
    }
}

/// Page sizes of the audit trail.
const AUDIT_PAGE: (i32, i32) = (100, 1_000);

/// Parses a read of the audit trail.
pub(crate) fn audit_request(
    raw: pb::ListAuditEntriesRequest,
) -> Result<crate::audit::AuditQuery, Error> {
    let mut v = Violations::default();
    let text = |v: &mut Violations, field: &str, raw: String| {
        v.text(field, raw, limits::MAX_SHORT_TEXT, false)
    };
    let subject = text(&mut v, "subject", raw.subject);
    let action = text(&mut v, "action", raw.action);
    let outcome = text(&mut v, "outcome", raw.outcome);
    let case_id = if raw.case_id.is_empty() {
        None
    } else {
        case_id("case_id", &raw.case_id)
            .map_err(|_| v.add("case_id", "is not a UUID"))
            .ok()
    };
    let from = v.time("from", raw.from);
    let before = v.time("before", raw.before);
    let limit = match raw.page_size {
        0 => Some(AUDIT_PAGE.0),
        n if (1..=AUDIT_PAGE.1).contains(&n) => Some(n),
        _ => {
            v.add("page_size", format!("must be 0 to {}", AUDIT_PAGE.1));
            None
        }
    };
    let after = if raw.page_token.is_empty() {
        Some(0)
    } else {
        let after = raw.page_token.parse::<i64>().ok().filter(|n| *n > 0);
        if after.is_none() {
            v.add("page_token", "is not a token this service issued");
        }
        after
    };
    let parsed = match (limit, after) {
        (Some(limit), Some(after)) => Some(crate::audit::AuditQuery {
            subject,
            case_id,
            action,
            outcome,
            from,
            before,
            after,
            limit: limit as u32,
        }),
        _ => None,
    };
    v.finish(parsed)
}

impl From<crate::audit::AuditRecord> for pb::AuditEntry {
    fn from(record: crate::audit::AuditRecord) -> Self {
        let entry = record.entry;
        Self {
            sequence: record.sequence,
            at: Some(timestamp(entry.at)),
            subject: entry.subject,
            role: entry.role,
            action: entry.action,
            case_id: entry.case_id.map(|id| id.to_string()).unwrap_or_default(),
            outcome: entry.outcome,
            request_id: entry.request_id,
        }
    }
}
