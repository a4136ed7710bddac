//! Case ids, case lists and their page tokens, and the case, routing and receipt messages the
//! tracking service returns.

use super::*;

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

pub(crate) fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
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
            waits_until: a.waits_until.map(timestamp),
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
            notes: s.notes,
            requested_action_not_taken: s.unmet_request.unwrap_or_default(),
        }
    }
}

impl From<&Candidate> for pb::RoutingCandidate {
    fn from(c: &Candidate) -> Self {
        let (step, province, neighbourhood) = match &c.step {
            CoverStep::IncidentCounty => (pb::CoverStep::IncidentCounty, "", ""),
            CoverStep::DesignatedCounty => (pb::CoverStep::DesignatedCounty, "", ""),
            CoverStep::Province => (pb::CoverStep::Province, "", ""),
            CoverStep::NeighbouringProvince(p) => {
                (pb::CoverStep::NeighbouringProvince, p.as_str(), "")
            }
            CoverStep::Neighbourhood(n) => (pb::CoverStep::Neighbourhood, "", n.as_str()),
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
            cover_province: province.to_owned(),
            distance_km: c.distance_km,
            verdict: verdict as i32,
            detail,
            cover_neighbourhood: neighbourhood.to_owned(),
        }
    }
}

impl From<&ActionDecision> for pb::ActionOutcome {
    fn from(a: &ActionDecision) -> Self {
        let (action, kind) = match &a.action {
            Action::DispatchMobileTeam => (pb::ActionType::DispatchMobileTeam, 0),
            Action::ReferTo { kind, .. } => (pb::ActionType::ReferTo, kind.to_wire()),
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
                    waits_until: a.waits_until,
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
            notes: d.notes.clone(),
            requested_action_not_taken: d.unmet_request.clone().unwrap_or_default(),
            crises: d
                .crises
                .iter()
                .map(|c| pb::CrisisInForce {
                    crisis_id: c.crisis_id.to_string(),
                    name: c.name.clone(),
                    version: c.version,
                })
                .collect(),
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
            county_unknown: location.county.is_empty(),
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
                    service_point_id: f.service_point_id.unwrap_or_default(),
                })
                .collect(),
            referrals: case.referrals.into_iter().map(Into::into).collect(),
            dispatches: case.dispatches.into_iter().map(Into::into).collect(),
            summary: Some(case.summary.into()),
        }
    }
}
