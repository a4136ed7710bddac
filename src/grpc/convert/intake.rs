//! Intakes of both lines, parsed into validated, triaged domain values.

use super::*;

/// How far in the future a call's start may lie, for clocks that disagree.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

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
    let primary = v.enumeration::<Category>("intake.primary_category", raw.primary_category);
    let secondary = parse_secondary(v, &raw.secondary_categories, primary);
    // A silent, nuisance or information-only call is recorded for statistics with its contact
    // and category alone: what it leaves out takes the "not known" values.
    let minimal = raw.secondary_categories.is_empty()
        && primary
            .is_some_and(|c| matches!(c, Category::InformationOnly | Category::NuisanceOrSilent));
    let reporter = match raw.reporter {
        None if minimal => Some(Reporter {
            relationship: Relationship::Unknown,
            anonymous: true,
            name: None,
            callback_consent: false,
            callback_number: None,
        }),
        reporter => v
            .required("intake.reporter", reporter)
            .and_then(|r| parse_reporter(v, r)),
    };
    let subjects = if minimal && raw.subjects.is_empty() {
        Some(Vec::new())
    } else {
        parse_subjects(v, raw.subjects)
    };
    let location = match raw.location {
        None if minimal => contact.as_ref().map(|c| Location {
            province: c
                .overflow_from_province
                .clone()
                .unwrap_or_else(|| c.answering_province.clone()),
            county: String::new(),
            district: None,
            neighbourhood: None,
            address: None,
            landmark: None,
            coordinates: None,
            place_type: PlaceType::Unknown,
        }),
        location => v
            .required("intake.location", location)
            .and_then(|l| parse_location(v, l)),
    };
    let risk = match raw.risk {
        None if minimal => Some(RiskFacts::none_reported()),
        risk => v
            .required("intake.risk", risk)
            .and_then(|r| parse_risk(v, r)),
    };
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
    match (implied_minor, raw.minor) {
        (Some(implied), Some(sent)) if implied != sent => {
            v.add(f("minor"), "contradicts the subject's age");
        }
        // The age given does not say whether the subject is a child: the caller must.
        (None, None) if age.is_some() => {
            v.add(
                f("minor"),
                "is required when the age does not say whether the subject is under 18",
            );
        }
        _ => {}
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
    // Empty when the caller could not say; a name or id is made canonical against the
    // directory before the intake is recorded (`grpc::canonical_county`).
    let county = if raw.county_unknown {
        if !raw.county.trim().is_empty() {
            v.add(f("county"), "must be empty when county_unknown is set");
        }
        Some(String::new())
    } else {
        v.required_text(&f("county"), raw.county, limits::MAX_SHORT_TEXT)
    };
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
