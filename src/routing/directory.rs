//! The directory routing reads: provinces and their neighbours, counties and their designated
//! cover (شهرستان معین), service points and mobile teams, indexed by county and kind so that a
//! decision looks only at the handful of places near the incident.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Asia::Tehran;
use serde::{Deserialize, Serialize};

use crate::domain::decision::{DutyStatus, ServicePointKind};
use crate::domain::names::{edit_distance, normalise};
use crate::domain::types::{Category, Sex};

/// A county, named by its province code and its English name (names repeat across provinces).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CountyKey {
    /// ISO 3166-2:IR code of the province.
    pub province: String,
    /// English name, as in the directory.
    pub name: String,
}

/// A county (شهرستان).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct County {
    /// Stable id: the county's OpenStreetMap relation id (`None` for a county added by hand
    /// that the built-in geography does not know).
    #[serde(default)]
    pub id: Option<String>,
    /// Province code.
    pub province: String,
    /// English name.
    pub name_en: String,
    /// Persian name.
    pub name_fa: String,
    /// Latitude of the county seat.
    pub lat: f64,
    /// Longitude of the county seat.
    pub lon: f64,
    /// The county that covers this one when it has no social-emergency centre of its own.
    #[serde(default)]
    pub covered_by: Option<String>,
}

/// Days of the week, in Tehran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Day {
    /// شنبه, the first working day.
    Saturday,
    /// یکشنبه.
    Sunday,
    /// دوشنبه.
    Monday,
    /// سه‌شنبه.
    Tuesday,
    /// چهارشنبه.
    Wednesday,
    /// پنجشنبه.
    Thursday,
    /// جمعه, the weekly holiday.
    Friday,
}

impl Day {
    fn of(weekday: chrono::Weekday) -> Self {
        match weekday {
            chrono::Weekday::Sat => Self::Saturday,
            chrono::Weekday::Sun => Self::Sunday,
            chrono::Weekday::Mon => Self::Monday,
            chrono::Weekday::Tue => Self::Tuesday,
            chrono::Weekday::Wed => Self::Wednesday,
            chrono::Weekday::Thu => Self::Thursday,
            chrono::Weekday::Fri => Self::Friday,
        }
    }

    fn previous(self) -> Self {
        match self {
            Self::Saturday => Self::Friday,
            Self::Sunday => Self::Saturday,
            Self::Monday => Self::Sunday,
            Self::Tuesday => Self::Monday,
            Self::Wednesday => Self::Tuesday,
            Self::Thursday => Self::Wednesday,
            Self::Friday => Self::Thursday,
        }
    }
}

/// A time of day in Tehran, `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LocalTime(u16);

impl LocalTime {
    /// Minutes after midnight.
    pub fn minutes(self) -> u16 {
        self.0
    }

    /// The time of day of `at` in Tehran, with its day.
    pub fn in_tehran(at: DateTime<Utc>) -> (Day, Self) {
        let local = at.with_timezone(&Tehran);
        let minutes = local.hour() * 60 + local.minute();
        (Day::of(local.weekday()), Self(minutes as u16))
    }
}

impl TryFrom<String> for LocalTime {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a time of day as HH:MM (00:00 to 24:00)");
        let (h, m) = text.split_once(':').ok_or_else(bad)?;
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m >= 60 || h > 24 || (h == 24 && m != 0) || text.len() != 5 {
            return Err(bad());
        }
        Ok(Self(h * 60 + m))
    }
}

impl From<LocalTime> for String {
    fn from(time: LocalTime) -> Self {
        format!("{:02}:{:02}", time.0 / 60, time.0 % 60)
    }
}

/// A weekly window: on `days`, from `from` to `to` Tehran time. A window whose `to` is not after
/// its `from` runs across midnight into the next day (`20:00`–`08:00`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Days the window starts on.
    pub days: Vec<Day>,
    /// Start, inclusive.
    pub from: LocalTime,
    /// End, exclusive.
    pub to: LocalTime,
}

impl Window {
    /// True when `(day, time)` falls in the window.
    pub fn contains(&self, day: Day, time: LocalTime) -> bool {
        if self.from < self.to {
            self.days.contains(&day) && self.from <= time && time < self.to
        } else {
            (self.days.contains(&day) && time >= self.from)
                || (self.days.contains(&day.previous()) && time < self.to)
        }
    }
}

/// When a service point takes cases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "windows")]
pub enum OpeningHours {
    /// Day and night, every day.
    AlwaysOpen,
    /// Only in these weekly windows.
    Weekly(Vec<Window>),
}

impl OpeningHours {
    /// When the point is next open at or after `at`: `at` itself when it is open then, the
    /// start of its next window otherwise, `None` when it has no window at all.
    pub fn next_opening(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_open(at) {
            return Some(at);
        }
        let Self::Weekly(windows) = self else {
            return Some(at);
        };
        let local = at.with_timezone(&Tehran);
        // Every window starts within the coming week; the eighth day covers a window that
        // starts later today than now, a week on.
        (0..=7)
            .flat_map(|days| {
                let date = local.date_naive() + chrono::Days::new(days);
                let day = Day::of(date.weekday());
                windows
                    .iter()
                    .filter(move |w| w.days.contains(&day))
                    .filter_map(move |w| {
                        let minutes = u32::from(w.from.minutes());
                        let time =
                            chrono::NaiveTime::from_hms_opt(minutes / 60 % 24, minutes % 60, 0)?;
                        date.and_time(time)
                            .and_local_timezone(Tehran)
                            .earliest()
                            .map(|start| start.with_timezone(&Utc))
                    })
            })
            .filter(|start| *start > at)
            .min()
    }

    /// True when open at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        match self {
            Self::AlwaysOpen => true,
            Self::Weekly(windows) => {
                let (day, time) = LocalTime::in_tehran(at);
                windows.iter().any(|w| w.contains(day, time))
            }
        }
    }
}

/// Who a service point admits. An empty list admits everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Admission {
    /// Sexes admitted.
    pub sexes: Vec<Sex>,
    /// Youngest age admitted, in years.
    pub min_age: Option<u32>,
    /// Oldest age admitted, in years.
    pub max_age: Option<u32>,
    /// False when no one under 18 is admitted on their own.
    pub accepts_minors: Option<bool>,
    /// True when a woman's children are admitted with her, whatever their age or sex.
    pub accepts_women_with_children: bool,
}

/// A place a case can be referred to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServicePoint {
    /// Stable identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Kind.
    pub kind: ServicePointKind,
    /// Province code.
    pub province: String,
    /// County (English name).
    pub county: String,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Categories served; empty means all.
    #[serde(default)]
    pub categories: Vec<Category>,
    /// Opening hours.
    pub hours: OpeningHours,
    /// Places (beds), for the kinds that admit people.
    #[serde(default)]
    pub capacity: Option<u32>,
    /// Places taken, as the service point reports them.
    #[serde(default)]
    pub occupancy: u32,
    /// Places held by the service's referrals to it that are requested, accepted, in progress
    /// or on hold (live state, counted from the referrals; never in a seed file).
    #[serde(skip)]
    pub reserved: u32,
    /// Admission limits.
    #[serde(default)]
    pub admission: Admission,
    /// Neighbourhoods (محله) of its county it serves, for a social-service base: a case in one
    /// of them is referred here first (names match as county names do).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neighbourhoods: Vec<String>,
}

impl ServicePoint {
    /// Places taken or held.
    pub fn taken(&self) -> u32 {
        self.occupancy.saturating_add(self.reserved)
    }

    /// The county the point stands in.
    pub fn county_key(&self) -> CountyKey {
        CountyKey {
            province: self.province.clone(),
            name: self.county.clone(),
        }
    }
}

/// A mobile emergency team (خودروی سیار).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MobileTeam {
    /// Stable identifier.
    pub id: String,
    /// Display name or call sign.
    pub name: String,
    /// Province code.
    pub province: String,
    /// Base county (English name).
    pub base_county: String,
    /// Duty status.
    pub status: DutyStatus,
    /// Last known position, if the team's app sent one.
    #[serde(default)]
    pub position: Option<(f64, f64)>,
    /// Cases the team is working on.
    #[serde(default)]
    pub load: u32,
}

/// A change to the directory's live state, reported by its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum DirectoryUpdate {
    /// A team's duty status and, when sent, its position.
    Team {
        /// The team.
        team_id: String,
        /// Its duty status.
        status: DutyStatus,
        /// Its position, when the app sent one.
        position: Option<(f64, f64)>,
    },
    /// A service point's occupied places.
    Occupancy {
        /// The service point.
        service_point_id: String,
        /// Places taken.
        occupancy: u32,
    },
}

/// Live state routing took in memory, to put back if the write it was for does not commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// A team, as it was before it was taken.
    Team(TeamState),
    /// A place held at a service point (its id).
    Place(String),
}

/// A team's duty status and load at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamState {
    /// The team.
    pub team_id: String,
    /// Its duty status.
    pub status: DutyStatus,
    /// Its cases in hand.
    pub load: u32,
}

/// One province's entry: its code and the provinces that take its overflow, nearest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvinceEntry {
    /// ISO 3166-2:IR code.
    pub code: String,
    /// Neighbouring provinces, nearest first.
    #[serde(default)]
    pub neighbours: Vec<String>,
}

/// The directory's contents, as a seed file holds them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DirectoryData {
    /// Provinces with their neighbours.
    pub provinces: Vec<ProvinceEntry>,
    /// Counties.
    pub counties: Vec<County>,
    /// Service points.
    pub service_points: Vec<ServicePoint>,
    /// Mobile teams.
    pub teams: Vec<MobileTeam>,
}

impl DirectoryData {
    /// Adds or replaces entries the way a seed or an upsert does: by province code, county key,
    /// service point id and team id. An existing service point keeps its occupancy and an
    /// existing team its duty status, load and position: those belong to their owners.
    pub fn merge(&mut self, upserts: DirectoryData) {
        for province in upserts.provinces {
            match self.provinces.iter_mut().find(|p| p.code == province.code) {
                Some(existing) => *existing = province,
                None => self.provinces.push(province),
            }
        }
        for mut county in upserts.counties {
            match self
                .counties
                .iter_mut()
                .find(|c| c.province == county.province && c.name_en == county.name_en)
            {
                Some(existing) => {
                    county.id = county.id.or_else(|| existing.id.clone());
                    *existing = county;
                }
                None => self.counties.push(county),
            }
        }
        for mut point in upserts.service_points {
            match self.service_points.iter_mut().find(|p| p.id == point.id) {
                Some(existing) => {
                    point.occupancy = existing.occupancy;
                    point.reserved = existing.reserved;
                    *existing = point;
                }
                None => self.service_points.push(point),
            }
        }
        for mut team in upserts.teams {
            match self.teams.iter_mut().find(|t| t.id == team.id) {
                Some(existing) => {
                    team.status = existing.status;
                    team.load = existing.load;
                    team.position = existing.position;
                    *existing = team;
                }
                None => self.teams.push(team),
            }
        }
    }
}

/// Why a directory cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid directory: {}", .0.join("; "))]
pub struct DirectoryError(pub Vec<String>);

/// The directory, indexed for routing.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    data: DirectoryData,
    neighbours: HashMap<String, Vec<String>>,
    counties: HashMap<CountyKey, usize>,
    /// Counties by province and the normalised form of their English or Persian name.
    county_names: HashMap<(String, String), usize>,
    /// Counties by stable id.
    county_ids: HashMap<String, usize>,
    counties_by_province: HashMap<String, Vec<CountyKey>>,
    points: HashMap<(CountyKey, ServicePointKind), Vec<usize>>,
    teams: HashMap<CountyKey, Vec<usize>>,
    point_ids: HashMap<String, usize>,
    /// Service points by county and the normalised name of a neighbourhood they serve.
    neighbourhood_points: HashMap<(CountyKey, String), Vec<usize>>,
    team_ids: HashMap<String, usize>,
}

impl Directory {
    /// Checks and indexes directory data.
    pub fn new(data: DirectoryData) -> Result<Self, DirectoryError> {
        let mut problems = Vec::new();
        let mut directory = Self::default();
        for province in &data.provinces {
            if crate::domain::province::by_code(&province.code).is_none() {
                problems.push(format!("unknown province {}", province.code));
            }
            directory
                .neighbours
                .insert(province.code.clone(), province.neighbours.clone());
        }
        for (i, county) in data.counties.iter().enumerate() {
            let key = CountyKey {
                province: county.province.clone(),
                name: county.name_en.clone(),
            };
            if crate::domain::province::by_code(&county.province).is_none() {
                problems.push(format!(
                    "county {} is in unknown province {}",
                    county.name_en, county.province
                ));
            }
            if directory.counties.insert(key.clone(), i).is_some() {
                problems.push(format!(
                    "county {} appears twice in {}",
                    county.name_en, county.province
                ));
            }
            let mut forms = vec![normalise(&county.name_en), normalise(&county.name_fa)];
            forms.dedup();
            for form in forms.into_iter().filter(|f| !f.is_empty()) {
                if let Some(other) = directory
                    .county_names
                    .insert((county.province.clone(), form), i)
                    .filter(|&other| other != i)
                {
                    problems.push(format!(
                        "counties {} and {} of {} have names that read the same",
                        data.counties[other].name_en, county.name_en, county.province
                    ));
                }
            }
            if let Some(id) = &county.id
                && directory.county_ids.insert(id.clone(), i).is_some()
            {
                problems.push(format!("county id {id} appears twice"));
            }
            directory
                .counties_by_province
                .entry(county.province.clone())
                .or_default()
                .push(key);
        }
        for county in &data.counties {
            if let Some(cover) = &county.covered_by {
                let key = CountyKey {
                    province: county.province.clone(),
                    name: cover.clone(),
                };
                if !directory.counties.contains_key(&key) {
                    problems.push(format!(
                        "county {} is covered by {cover}, which is not a county of {}",
                        county.name_en, county.province
                    ));
                }
            }
        }
        let mut ids = std::collections::HashSet::new();
        for (i, point) in data.service_points.iter().enumerate() {
            directory.point_ids.insert(point.id.clone(), i);
            for neighbourhood in &point.neighbourhoods {
                directory
                    .neighbourhood_points
                    .entry((point.county_key(), normalise(neighbourhood)))
                    .or_default()
                    .push(i);
            }
            if !ids.insert(point.id.as_str()) {
                problems.push(format!("service point id {} appears twice", point.id));
            }
            if !directory.counties.contains_key(&point.county_key()) {
                problems.push(format!(
                    "service point {} is in unknown county {}",
                    point.id, point.county
                ));
            }
            directory
                .points
                .entry((point.county_key(), point.kind))
                .or_default()
                .push(i);
        }
        for (i, team) in data.teams.iter().enumerate() {
            directory.team_ids.insert(team.id.clone(), i);
            if !ids.insert(team.id.as_str()) {
                problems.push(format!("team id {} appears twice", team.id));
            }
            let key = CountyKey {
                province: team.province.clone(),
                name: team.base_county.clone(),
            };
            if !directory.counties.contains_key(&key) {
                problems.push(format!(
                    "team {} is based in unknown county {}",
                    team.id, team.base_county
                ));
            }
            directory.teams.entry(key).or_default().push(i);
        }
        // Each county's list in a fixed order, so that decisions do not depend on file order.
        for list in directory.counties_by_province.values_mut() {
            list.sort();
        }
        directory.data = data;
        if problems.is_empty() {
            Ok(directory)
        } else {
            Err(DirectoryError(problems))
        }
    }

    /// The data the directory was built from.
    pub fn data(&self) -> &DirectoryData {
        &self.data
    }

    /// Finds a county of `province` by its id or by any spelling of its English or Persian name
    /// (see [`normalise`]).
    pub fn county(&self, province: &str, name_or_id: &str) -> Option<&County> {
        let index = self.county_ids.get(name_or_id.trim()).or_else(|| {
            self.county_names
                .get(&(province.to_owned(), normalise(name_or_id)))
        })?;
        Some(&self.data.counties[*index]).filter(|c| c.province == province)
    }

    /// A county by its stable id, in whichever province.
    pub fn county_by_id(&self, id: &str) -> Option<&County> {
        self.county_ids
            .get(id.trim())
            .map(|&i| &self.data.counties[i])
    }

    /// The counties of `province` whose names read closest to `name`, closest first: what a
    /// caller who typed a name that matches none probably meant.
    pub fn closest_counties(&self, province: &str, name: &str, most: usize) -> Vec<&County> {
        let wanted = normalise(name);
        let mut scored: Vec<(usize, &County)> = self
            .counties_of(province)
            .iter()
            .filter_map(|key| self.county_by_key(key))
            .map(|county| {
                let distance = [&county.name_en, &county.name_fa]
                    .iter()
                    .map(|n| edit_distance(&wanted, &normalise(n)))
                    .min()
                    .unwrap_or(usize::MAX);
                (distance, county)
            })
            .collect();
        scored.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name_en.cmp(&b.1.name_en)));
        scored.into_iter().take(most).map(|(_, c)| c).collect()
    }

    /// Service points of `kind` serving `neighbourhood` (any spelling) of `county`.
    pub fn points_serving(
        &self,
        county: &CountyKey,
        neighbourhood: &str,
        kind: ServicePointKind,
    ) -> impl Iterator<Item = &ServicePoint> {
        self.neighbourhood_points
            .get(&(county.clone(), normalise(neighbourhood)))
            .into_iter()
            .flatten()
            .map(|&i| &self.data.service_points[i])
            .filter(move |p| p.kind == kind)
    }

    /// The counties of a province, in name order.
    pub fn counties_of(&self, province: &str) -> &[CountyKey] {
        self.counties_by_province
            .get(province)
            .map_or(&[], Vec::as_slice)
    }

    /// A county by key.
    pub fn county_by_key(&self, key: &CountyKey) -> Option<&County> {
        self.counties.get(key).map(|&i| &self.data.counties[i])
    }

    /// A province's neighbours, nearest first.
    pub fn neighbours(&self, province: &str) -> &[String] {
        self.neighbours.get(province).map_or(&[], Vec::as_slice)
    }

    /// The provinces whose cover chain reaches a team of `province`: its own, and every one
    /// that has it among its neighbours.
    pub fn provinces_reaching(&self, province: &str) -> Vec<String> {
        let mut reaching = vec![province.to_owned()];
        let mut others: Vec<String> = self
            .neighbours
            .iter()
            .filter(|(code, list)| *code != province && list.iter().any(|n| n == province))
            .map(|(code, _)| code.clone())
            .collect();
        others.sort();
        reaching.extend(others);
        reaching
    }

    /// Service points of `kind` in a county.
    pub fn points_in(
        &self,
        county: &CountyKey,
        kind: ServicePointKind,
    ) -> impl Iterator<Item = &ServicePoint> {
        self.points
            .get(&(county.clone(), kind))
            .into_iter()
            .flatten()
            .map(|&i| &self.data.service_points[i])
    }

    /// Marks a team busy with one more case, as a dispatch does, and returns what it was, so
    /// that the change can be undone if the dispatch is not committed.
    pub fn assign_team(&mut self, team_id: &str) -> Option<TeamState> {
        let team = self.team_mut(team_id)?;
        let before = TeamState {
            team_id: team.id.clone(),
            status: team.status,
            load: team.load,
        };
        team.status = DutyStatus::Busy;
        team.load += 1;
        Some(before)
    }

    /// Holds a place at a service point for a referral; unknown ids change nothing.
    pub fn reserve_place(&mut self, point_id: &str) -> Option<Taken> {
        let point = self.point_mut(point_id)?;
        point.reserved += 1;
        Some(Taken::Place(point_id.to_owned()))
    }

    /// Gives back a place a referral held (it ended, or its write did not commit).
    pub fn release_place(&mut self, point_id: &str) {
        if let Some(point) = self.point_mut(point_id) {
            point.reserved = point.reserved.saturating_sub(1);
        }
    }

    /// Puts back what routing took for a write that did not commit.
    pub fn restore(&mut self, taken: Taken) {
        match taken {
            Taken::Team(state) => self.restore_team(state),
            Taken::Place(point_id) => self.release_place(&point_id),
        }
    }

    /// Puts a team as `state` says: back as it was before an uncommitted write, or as a
    /// committed change left it.
    pub fn restore_team(&mut self, state: TeamState) {
        if let Some(team) = self.team_mut(&state.team_id) {
            team.status = state.status;
            team.load = state.load;
        }
    }

    /// Applies an owner's change to the live state; unknown ids change nothing.
    pub fn apply(&mut self, update: &DirectoryUpdate) {
        match update {
            DirectoryUpdate::Team {
                team_id,
                status,
                position,
            } => {
                if let Some(team) = self.team_mut(team_id) {
                    team.status = *status;
                    if position.is_some() {
                        team.position = *position;
                    }
                }
            }
            DirectoryUpdate::Occupancy {
                service_point_id,
                occupancy,
            } => {
                if let Some(point) = self
                    .point_ids
                    .get(service_point_id)
                    .map(|&i| &mut self.data.service_points[i])
                {
                    point.occupancy = *occupancy;
                }
            }
        }
    }

    fn point_mut(&mut self, point_id: &str) -> Option<&mut ServicePoint> {
        let index = *self.point_ids.get(point_id)?;
        Some(&mut self.data.service_points[index])
    }

    fn team_mut(&mut self, team_id: &str) -> Option<&mut MobileTeam> {
        let index = *self.team_ids.get(team_id)?;
        Some(&mut self.data.teams[index])
    }

    /// A team by id.
    pub fn team(&self, team_id: &str) -> Option<&MobileTeam> {
        self.team_ids.get(team_id).map(|&i| &self.data.teams[i])
    }

    /// A service point by id.
    pub fn service_point(&self, id: &str) -> Option<&ServicePoint> {
        self.point_ids
            .get(id)
            .map(|&i| &self.data.service_points[i])
    }

    /// Mobile teams based in a county.
    pub fn teams_in(&self, county: &CountyKey) -> impl Iterator<Item = &MobileTeam> {
        self.teams
            .get(county)
            .into_iter()
            .flatten()
            .map(|&i| &self.data.teams[i])
    }
}

/// Great-circle distance in kilometres.
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_next_opening_is_the_start_of_the_next_window_in_tehran() {
        let weekdays: OpeningHours = toml::from_str::<toml::Value>(
            r#"type = "weekly"
windows = [{ days = ["saturday", "sunday", "monday", "tuesday", "wednesday"], from = "08:00", to = "14:30" }]"#,
        )
        .ok()
        .and_then(|v| v.try_into().ok())
        .unwrap();
        // Tehran is UTC+03:30: 01:00 on Sunday 2026-11-22 in Tehran is 21:30 UTC on Saturday.
        let night = DateTime::parse_from_rfc3339("2026-11-21T21:30:00Z")
            .unwrap()
            .to_utc();
        let eight = DateTime::parse_from_rfc3339("2026-11-22T04:30:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(weekdays.next_opening(night), Some(eight));
        // Open now: now.
        let ten = DateTime::parse_from_rfc3339("2026-11-22T06:30:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(weekdays.next_opening(ten), Some(ten));
        // Wednesday afternoon, after closing: Saturday 08:00 (Thursday and Friday are closed).
        let wednesday = DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
            .unwrap()
            .to_utc();
        let saturday = DateTime::parse_from_rfc3339("2026-11-28T04:30:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(weekdays.next_opening(wednesday), Some(saturday));
        assert_eq!(OpeningHours::AlwaysOpen.next_opening(night), Some(night));
        assert_eq!(OpeningHours::Weekly(Vec::new()).next_opening(night), None);
    }

    use chrono::TimeZone;

    use super::*;

    fn at_tehran(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        // 2026-11-21 is a Saturday.
        Tehran
            .with_ymd_and_hms(2026, 11, day, hour, minute, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn time(text: &str) -> LocalTime {
        LocalTime::try_from(text.to_owned()).unwrap()
    }

    #[test]
    fn office_hours_open_and_close_on_the_minute() {
        let hours = OpeningHours::Weekly(vec![Window {
            days: vec![
                Day::Saturday,
                Day::Sunday,
                Day::Monday,
                Day::Tuesday,
                Day::Wednesday,
            ],
            from: time("07:30"),
            to: time("14:30"),
        }]);
        assert!(!hours.is_open(at_tehran(21, 7, 29)));
        assert!(hours.is_open(at_tehran(21, 7, 30)));
        assert!(hours.is_open(at_tehran(21, 14, 29)));
        assert!(!hours.is_open(at_tehran(21, 14, 30)));
        assert!(!hours.is_open(at_tehran(27, 10, 0)), "closed on Friday");
    }

    #[test]
    fn a_window_across_midnight_runs_into_the_next_day() {
        let hours = OpeningHours::Weekly(vec![Window {
            days: vec![Day::Thursday],
            from: time("20:00"),
            to: time("08:00"),
        }]);
        // 2026-11-26 is a Thursday, 2026-11-27 a Friday.
        assert!(!hours.is_open(at_tehran(26, 19, 59)));
        assert!(hours.is_open(at_tehran(26, 20, 0)));
        assert!(hours.is_open(at_tehran(26, 23, 59)));
        assert!(hours.is_open(at_tehran(27, 0, 0)));
        assert!(hours.is_open(at_tehran(27, 7, 59)));
        assert!(!hours.is_open(at_tehran(27, 8, 0)));
        assert!(
            !hours.is_open(at_tehran(27, 20, 0)),
            "Friday evening is not in the window"
        );
        assert!(
            !hours.is_open(at_tehran(26, 3, 0)),
            "Thursday early morning belongs to Wednesday"
        );
    }

    #[test]
    fn times_of_day_parse_strictly() {
        assert_eq!(time("00:00").minutes(), 0);
        assert_eq!(time("24:00").minutes(), 1440);
        for bad in ["7:30", "24:01", "12:60", "noon", "12-30", ""] {
            assert!(LocalTime::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn distances_between_capitals_are_plausible() {
        let tehran = (35.69, 51.39);
        let qom = (34.64, 50.88);
        let km = distance_km(tehran, qom);
        assert!((120.0..135.0).contains(&km), "{km}");
    }
}
