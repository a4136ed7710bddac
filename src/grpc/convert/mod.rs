//! Conversions between the wire types of `referral.v1` and the domain's, one file a topic.
//!
//! Requests are parsed into domain values here: every bad field is collected with its path, so
//! one `INVALID_ARGUMENT` names all of them. Descriptions never repeat the value they reject.

mod audit;
mod case;
mod crisis;
mod directory;
mod intake;
mod tracking;
mod violations;
mod wire;

pub(crate) use audit::*;
pub(crate) use case::*;
pub(crate) use crisis::*;
pub(crate) use directory::*;
pub(crate) use intake::*;
pub(crate) use tracking::*;
use violations::Violations;
use wire::WireEnum;

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
