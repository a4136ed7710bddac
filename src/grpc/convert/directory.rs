//! The directory's requests (counties, service points, teams, occupancy and duty status) and
//! the entries it returns.

use super::*;
use crate::domain::change::ChangeKey;

/// Parses a centre's occupancy report.
pub(crate) fn occupancy_update(
    raw: pb::UpdateOccupancyRequest,
) -> Result<(DirectoryUpdate, Option<ChangeKey>), Error> {
    let mut v = Violations::default();
    let key = v.change_key(&raw, &raw.request_id);
    let id = v.required_text(
        "service_point_id",
        raw.service_point_id,
        limits::MAX_SHORT_TEXT,
    );
    v.finish(id.map(|service_point_id| {
        let update = DirectoryUpdate::Occupancy {
            service_point_id,
            occupancy: raw.occupancy,
        };
        (update, key)
    }))
}

/// Parses a team's duty-status report.
pub(crate) fn team_update(
    raw: pb::UpdateTeamStatusRequest,
) -> Result<(DirectoryUpdate, Option<ChangeKey>), Error> {
    let mut v = Violations::default();
    let key = v.change_key(&raw, &raw.request_id);
    let id = v.required_text("team_id", raw.team_id, limits::MAX_SHORT_TEXT);
    let status = v.enumeration::<DutyStatus>("status", raw.status);
    let position = match raw.position {
        None => Some(None),
        some => v.position("position", some).map(Some),
    };
    let parsed = match (id, status, position) {
        (Some(team_id), Some(status), Some(position)) => Some((
            DirectoryUpdate::Team {
                team_id,
                status,
                position,
            },
            key,
        )),
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
            neighbourhoods: p.neighbourhoods.clone(),
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
        // The id is the built-in geography's: an upsert keeps the stored one.
        Some(County {
            id: None,
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
        let neighbourhoods = if p.neighbourhoods.len() > 50 {
            v.add(f("neighbourhoods"), "has more than 50 neighbourhoods");
            None
        } else {
            p.neighbourhoods
                .into_iter()
                .enumerate()
                .map(|(i, n)| {
                    v.required_text(
                        &format!("service_point.neighbourhoods[{i}]"),
                        n,
                        limits::MAX_SHORT_TEXT,
                    )
                })
                .collect::<Vec<_>>()
                .into_iter()
                .collect::<Option<Vec<String>>>()
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
            // Held places are counted from the referrals, never sent.
            reserved: 0,
            admission: Admission {
                sexes: sexes?,
                min_age: admission.min_age,
                max_age: admission.max_age,
                accepts_minors: admission.accepts_minors,
                accepts_women_with_children: admission.accepts_women_with_children,
            },
            neighbourhoods: neighbourhoods?,
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
            id: c.id.clone().unwrap_or_default(),
        }
    }
}
