//! The stored rows, one type per table (or per read that joins), and how they become the
//! domain's values.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::db::Values;
use super::sealed::{
    CONTACT_DETAILS, FOLLOW_UP_OUTCOME, NOTE_BODY, STEP_POSITION, case_details, decision_of,
    from_json, from_micros, micros, optional_enum, parse_enum, step_row, to_json,
};
use crate::crypto::FieldCipher;
use crate::domain::Error;
use crate::domain::case::{
    CaseRecord, CaseSummary, DispatchStep, RecordedContact, RecordedDispatch, RecordedFollowUp,
    RecordedNote, RecordedReferral,
};
use crate::domain::event::NewEvent;
use crate::domain::intake::Contact;
use crate::domain::plan::change::{LoadedDispatch, LoadedReferral};
use crate::domain::sensitive::Sensitive;
use crate::domain::types::{DispatchStatus, ReferralStatus};
use crate::routing::directory::{
    Admission, County, DirectoryData, MobileTeam, OpeningHours, ProvinceEntry, ServicePoint,
};
use crate::routing::policy::PolicyDocument;

/// A stored idempotency key with its key columns, as a batch's lookup finds it.
#[derive(sqlx::FromRow)]
pub(super) struct KeyedIdempotencyRow {
    pub(super) line: String,
    pub(super) request_id: String,
    pub(super) payload_hash: Vec<u8>,
    pub(super) receipt: Vec<u8>,
}

/// A stored routing decision.
#[derive(sqlx::FromRow)]
pub(super) struct DecisionRow {
    pub(super) case_id: Uuid,
    pub(super) decision_no: i64,
    pub(super) decision: String,
}

/// A stored referral.
#[derive(sqlx::FromRow)]
pub(super) struct ReferralRow {
    pub(super) referral_id: Uuid,
    pub(super) case_id: Uuid,
    pub(super) service_point_id: String,
    pub(super) purpose: String,
    pub(super) status: String,
    pub(super) version: i64,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) reason: Option<String>,
}

/// A stored event.
#[derive(sqlx::FromRow)]
pub(super) struct EventDbRow {
    pub(super) event_id: i64,
    pub(super) case_id: Option<Uuid>,
    pub(super) kind: String,
    pub(super) actor: String,
    pub(super) occurred_at: i64,
    pub(super) reason: Option<String>,
    pub(super) data: Vec<u8>,
    pub(super) line: String,
    pub(super) province: String,
    pub(super) county: String,
    pub(super) priority: String,
    pub(super) team_id: Option<String>,
    pub(super) recorded_by: String,
}

impl EventDbRow {
    pub(super) fn into_event(self) -> Result<crate::domain::event::FeedEvent, Error> {
        Ok(crate::domain::event::FeedEvent {
            sequence: self.event_id,
            case_id: self.case_id,
            kind: parse_enum("event kind", &self.kind)?,
            actor: self.actor,
            occurred_at: from_micros(self.occurred_at)?,
            reason: self.reason,
            data: String::from_utf8(self.data).map_err(Error::internal)?,
            line: optional_enum("line", &self.line)?,
            province: self.province,
            county: self.county,
            priority: optional_enum("priority", &self.priority)?,
            team_id: self.team_id,
            recorded_by: self.recorded_by,
        })
    }
}

/// A stored dispatch step.
#[derive(sqlx::FromRow)]
pub(super) struct DispatchStepRow {
    dispatch_id: Uuid,
    status: String,
    occurred_at: i64,
    position: Option<Vec<u8>>,
}

/// A stored note.
#[derive(sqlx::FromRow)]
pub(super) struct NoteRow {
    note_id: Uuid,
    actor: String,
    created_at: i64,
    body: Vec<u8>,
}

/// A stored follow-up.
#[derive(sqlx::FromRow)]
pub(super) struct FollowUpRow {
    follow_up_id: Uuid,
    due_at: i64,
    reason: String,
    outcome: Option<String>,
    done_at: Option<i64>,
    service_point_id: Option<String>,
}

/// A stored dispatch.
#[derive(sqlx::FromRow)]
pub(super) struct DispatchRow {
    pub(super) dispatch_id: Uuid,
    pub(super) case_id: Uuid,
    pub(super) team_id: String,
    pub(super) status: String,
    pub(super) version: i64,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) reason: Option<String>,
}

/// The rest of a case: routing, referrals and dispatches.
pub(super) struct CaseExtras {
    pub(super) routing_status: String,
    pub(super) contacts: Vec<ContactRow>,
    pub(super) decisions: Vec<DecisionRow>,
    pub(super) referrals: Vec<ReferralRow>,
    pub(super) dispatches: Vec<DispatchRow>,
    pub(super) steps: Vec<DispatchStepRow>,
    pub(super) notes: Vec<NoteRow>,
    pub(super) follow_ups: Vec<FollowUpRow>,
    pub(super) outcome: Option<String>,
    pub(super) recorded_by: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct ProvinceRow {
    province: String,
    neighbours: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct CountyRow {
    province: String,
    county: String,
    name_fa: String,
    lat: f64,
    lon: f64,
    covered_by: Option<String>,
    county_id: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(super) struct ServicePointRow {
    service_point_id: String,
    kind: String,
    province: String,
    county: String,
    name: String,
    capacity: Option<i64>,
    occupancy: i64,
    details: String,
    reserved: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct TeamRow {
    team_id: String,
    province: String,
    base_county: String,
    name: String,
    status: String,
    load: i64,
    lat: Option<f64>,
    lon: Option<f64>,
}

#[derive(sqlx::FromRow)]
pub(super) struct PolicyRow {
    pub(super) policy_version: i64,
    document: String,
}

/// The parts of a service point kept as JSON.
#[derive(Serialize, Deserialize)]
pub(super) struct ServicePointDetails {
    lat: f64,
    lon: f64,
    categories: Vec<crate::domain::types::Category>,
    hours: OpeningHours,
    admission: Admission,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    neighbourhoods: Vec<String>,
}

/// The list columns of a case.
#[derive(sqlx::FromRow)]
pub(super) struct CaseRow {
    case_id: Uuid,
    reference: String,
    line: String,
    status: String,
    priority: String,
    primary_category: String,
    province: String,
    county: String,
    minors_involved: bool,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

/// A case with its details column.
#[derive(sqlx::FromRow)]
pub(super) struct CaseDetailRow {
    #[sqlx(flatten)]
    summary: CaseRow,
    details: Vec<u8>,
}

/// A case row with its routing status.
#[derive(sqlx::FromRow)]
pub(super) struct CaseWithRouting {
    #[sqlx(flatten)]
    pub(super) case: CaseDetailRow,
    pub(super) routing_status: String,
    pub(super) outcome: Option<String>,
    pub(super) recorded_by: String,
}

/// A stored contact.
#[derive(sqlx::FromRow)]
pub(super) struct ContactRow {
    contact_id: Uuid,
    line: String,
    recorded_at: i64,
    details: Vec<u8>,
}

/// An event to write: a change to a case, with what the feed's watchers filter on.
pub(super) struct EventRow {
    /// `None` for a crisis's event.
    pub(super) case_id: Option<Uuid>,
    pub(super) kind: &'static str,
    pub(super) actor: String,
    pub(super) occurred_at: i64,
    pub(super) reason: Option<String>,
    /// Non-sensitive facts of the change as JSON.
    pub(super) data: Vec<u8>,
    pub(super) line: &'static str,
    pub(super) province: String,
    pub(super) county: String,
    pub(super) priority: &'static str,
    /// The team the event concerns, for the team's assignment stream.
    pub(super) team_id: Option<String>,
    /// Who recorded the case, for the recording centre's stream.
    pub(super) recorded_by: String,
}

impl CaseRow {
    pub(super) fn into_summary(self) -> Result<CaseSummary, Error> {
        Ok(CaseSummary {
            case_id: self.case_id,
            reference: self.reference,
            line: parse_enum("line", &self.line)?,
            status: parse_enum("status", &self.status)?,
            priority: parse_enum("priority", &self.priority)?,
            primary_category: parse_enum("category", &self.primary_category)?,
            province: self.province,
            county: self.county,
            minors_involved: self.minors_involved,
            version: self.version,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}

impl CaseDetailRow {
    pub(super) fn into_record(
        self,
        extras: CaseExtras,
        cipher: &FieldCipher,
    ) -> Result<CaseRecord, Error> {
        let details = case_details(cipher, self.summary.case_id, &self.details)?;
        let referrals = extras
            .referrals
            .into_iter()
            .map(|row| {
                Ok(RecordedReferral {
                    referral_id: row.referral_id,
                    service_point_id: row.service_point_id,
                    purpose: parse_enum("purpose", &row.purpose)?,
                    status: parse_enum::<ReferralStatus>("referral status", &row.status)?,
                    version: row.version,
                    created_at: from_micros(row.created_at)?,
                    reason: row.reason,
                })
            })
            .collect::<Result<_, Error>>()?;
        let mut steps: HashMap<Uuid, Vec<DispatchStep>> = HashMap::new();
        for row in extras.steps {
            steps
                .entry(row.dispatch_id)
                .or_default()
                .push(DispatchStep {
                    status: parse_enum("dispatch status", &row.status)?,
                    occurred_at: from_micros(row.occurred_at)?,
                    position: row
                        .position
                        .map(|sealed| {
                            let row_key = step_row(row.dispatch_id, &row.status);
                            from_json::<(f64, f64)>(&STEP_POSITION.open(cipher, &row_key, &sealed)?)
                        })
                        .transpose()?,
                });
        }
        let dispatches = extras
            .dispatches
            .into_iter()
            .map(|row| {
                Ok(RecordedDispatch {
                    dispatch_id: row.dispatch_id,
                    team_id: row.team_id,
                    status: parse_enum::<DispatchStatus>("dispatch status", &row.status)?,
                    version: row.version,
                    created_at: from_micros(row.created_at)?,
                    reason: row.reason,
                    // The lifecycle's statuses are declared in its order.
                    steps: {
                        let mut steps = steps.remove(&row.dispatch_id).unwrap_or_default();
                        steps.sort_by_key(|s| (s.status, s.occurred_at));
                        steps
                    },
                })
            })
            .collect::<Result<_, Error>>()?;
        let mut decisions = extras
            .decisions
            .into_iter()
            .map(|row| decision_of(cipher, row.case_id, row.decision_no, &row.decision));
        let routing = decisions.next().transpose()?;
        let reroutes = decisions.collect::<Result<Vec<_>, Error>>()?;
        let notes = extras
            .notes
            .into_iter()
            .map(|row| {
                Ok(RecordedNote {
                    note_id: row.note_id,
                    actor: row.actor,
                    created_at: from_micros(row.created_at)?,
                    text: Sensitive::new(
                        String::from_utf8(NOTE_BODY.open(
                            cipher,
                            row.note_id.as_bytes(),
                            &row.body,
                        )?)
                        .map_err(Error::internal)?,
                    ),
                })
            })
            .collect::<Result<_, Error>>()?;
        let follow_ups = extras
            .follow_ups
            .into_iter()
            .map(|row| {
                Ok(RecordedFollowUp {
                    follow_up_id: row.follow_up_id,
                    due_at: from_micros(row.due_at)?,
                    reason: row.reason,
                    service_point_id: row.service_point_id,
                    done_at: row.done_at.map(from_micros).transpose()?,
                    outcome: row
                        .outcome
                        .map(|sealed| {
                            FOLLOW_UP_OUTCOME.open_text(
                                cipher,
                                row.follow_up_id.as_bytes(),
                                &sealed,
                            )
                        })
                        .transpose()?
                        .map(Sensitive::new),
                })
            })
            .collect::<Result<_, Error>>()?;
        let contacts = extras
            .contacts
            .into_iter()
            .map(|row| {
                Ok(RecordedContact {
                    contact_id: row.contact_id,
                    line: parse_enum("line", &row.line)?,
                    contact: from_json::<Contact>(&CONTACT_DETAILS.open(
                        cipher,
                        row.contact_id.as_bytes(),
                        &row.details,
                    )?)?,
                    recorded_at: from_micros(row.recorded_at)?,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(CaseRecord {
            summary: self.summary.into_summary()?,
            intake: details.intake,
            action: details.action,
            assessment: details.assessment,
            contacts,
            routing_status: parse_enum("routing status", &extras.routing_status)?,
            routing,
            reroutes,
            outcome: extras
                .outcome
                .as_deref()
                .map(|o| parse_enum("outcome", o))
                .transpose()?,
            notes,
            follow_ups,
            referrals,
            dispatches,
            recorded_by: extras.recorded_by,
        })
    }
}

/// Builds directory data from its stored rows.
pub(super) fn directory_from_rows(
    provinces: Vec<ProvinceRow>,
    counties: Vec<CountyRow>,
    points: Vec<ServicePointRow>,
    teams: Vec<TeamRow>,
) -> Result<DirectoryData, Error> {
    Ok(DirectoryData {
        provinces: provinces
            .into_iter()
            .map(|row| {
                Ok(ProvinceEntry {
                    code: row.province,
                    neighbours: from_json(row.neighbours.as_bytes())?,
                })
            })
            .collect::<Result<_, Error>>()?,
        counties: counties
            .into_iter()
            .map(|row| County {
                id: row.county_id,
                province: row.province,
                name_en: row.county,
                name_fa: row.name_fa,
                lat: row.lat,
                lon: row.lon,
                covered_by: row.covered_by,
            })
            .collect(),
        service_points: points
            .into_iter()
            .map(|row| {
                let details: ServicePointDetails = from_json(row.details.as_bytes())?;
                Ok(ServicePoint {
                    id: row.service_point_id,
                    name: row.name,
                    kind: parse_enum("service point kind", &row.kind)?,
                    province: row.province,
                    county: row.county,
                    lat: details.lat,
                    lon: details.lon,
                    categories: details.categories,
                    hours: details.hours,
                    capacity: row.capacity.map(|c| c as u32),
                    occupancy: row.occupancy as u32,
                    reserved: u32::try_from(row.reserved).unwrap_or(0),
                    admission: details.admission,
                    neighbourhoods: details.neighbourhoods,
                })
            })
            .collect::<Result<_, Error>>()?,
        teams: teams
            .into_iter()
            .map(|row| {
                Ok(MobileTeam {
                    id: row.team_id,
                    name: row.name,
                    province: row.province,
                    base_county: row.base_county,
                    status: parse_enum("duty status", &row.status)?,
                    position: row.lat.zip(row.lon),
                    load: row.load as u32,
                })
            })
            .collect::<Result<_, Error>>()?,
    })
}

/// The JSON column of a service point.
pub(super) fn service_point_details(point: &ServicePoint) -> Result<String, Error> {
    serde_json::to_string(&ServicePointDetails {
        lat: point.lat,
        lon: point.lon,
        categories: point.categories.clone(),
        hours: point.hours.clone(),
        admission: point.admission.clone(),
        neighbourhoods: point.neighbourhoods.clone(),
    })
    .map_err(Error::internal)
}

/// Decodes a stored policy.
pub(super) fn policy_from_row(row: PolicyRow) -> Result<(i64, PolicyDocument), Error> {
    Ok((row.policy_version, from_json(row.document.as_bytes())?))
}
impl EventRow {
    /// The row of an event a plan writes.
    pub(super) fn of(event: &NewEvent) -> Result<Self, Error> {
        let place = &event.place;
        Ok(Self {
            case_id: Some(place.case_id),
            kind: event.kind.as_str(),
            actor: event.actor.clone(),
            occurred_at: micros(event.occurred_at),
            reason: event.reason.clone(),
            data: to_json(&event.data)?,
            line: place.line.as_str(),
            province: place.province.clone(),
            county: place.county.clone(),
            priority: place.priority.as_str(),
            team_id: event.team_id.clone(),
            recorded_by: place.recorded_by.clone(),
        })
    }

    /// Binds this event's values, numbered `event_id` and chained with `hash`, on a `values`
    /// row, in `INSERT_EVENTS`'s column order.
    pub(super) fn push(&self, row: &mut Values<'_>, event_id: i64, hash: &[u8]) {
        row.push_bind(event_id)
            .push_bind(self.case_id)
            .push_bind(self.kind)
            .push_bind(&self.actor)
            .push_bind(self.occurred_at)
            .push_bind(&self.reason)
            .push_bind(&self.data)
            .push_bind(self.line)
            .push_bind(&self.province)
            .push_bind(&self.county)
            .push_bind(self.priority)
            .push_bind(&self.team_id)
            .push_bind(&self.recorded_by)
            .push_bind(hash);
    }
}

impl ReferralRow {
    /// The referral as a change sees it.
    pub(super) fn into_loaded(self) -> Result<LoadedReferral, Error> {
        Ok(LoadedReferral {
            referral_id: self.referral_id,
            case_id: self.case_id,
            service_point_id: self.service_point_id,
            purpose: parse_enum("purpose", &self.purpose)?,
            status: parse_enum("referral status", &self.status)?,
            version: self.version,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}

impl DispatchRow {
    /// The dispatch as a change sees it.
    pub(super) fn into_loaded(self) -> Result<LoadedDispatch, Error> {
        Ok(LoadedDispatch {
            dispatch_id: self.dispatch_id,
            case_id: self.case_id,
            team_id: self.team_id,
            status: parse_enum("dispatch status", &self.status)?,
            version: self.version,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}
