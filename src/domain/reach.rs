//! Reach: which cases a caller may know exist, decided from a case's parties (its area, who
//! recorded it, the teams sent and the service points it was referred to).

/// The cases a caller may know exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Every case (national operators and supervisors, and the service itself).
    Everywhere,
    /// Cases of a province, or of one county of it.
    Area {
        /// The province.
        province: String,
        /// The county, when the caller's scope is one.
        county: Option<String>,
    },
    /// Cases this subject recorded (a 1480 counsellor or centre).
    RecordedBy(String),
    /// Cases this team was dispatched to.
    Team(String),
    /// Cases referred to this service point.
    ServicePoint(String),
    /// No case (administrators and auditors).
    Nothing,
}

/// The facts of a case its reach is decided on.
#[derive(Debug, Clone, Copy)]
pub struct CaseParties<'a> {
    /// The case's province.
    pub province: &'a str,
    /// The case's county.
    pub county: &'a str,
    /// Who recorded the case.
    pub recorded_by: &'a str,
    /// Every team dispatched to it.
    pub teams: &'a [String],
    /// Every service point it was referred to.
    pub service_points: &'a [String],
}

impl Reach {
    /// True when a caller with this reach may know the case exists.
    pub fn covers(&self, case: &CaseParties<'_>) -> bool {
        match self {
            Self::Everywhere => true,
            Self::Area { province, county } => {
                province == case.province && county.as_ref().is_none_or(|c| c == case.county)
            }
            Self::RecordedBy(subject) => subject == case.recorded_by,
            Self::Team(team) => case.teams.iter().any(|t| t == team),
            Self::ServicePoint(point) => case.service_points.iter().any(|p| p == point),
            Self::Nothing => false,
        }
    }

    /// The province and county a caller of this reach may ask about, or `None` when any.
    pub fn area(&self) -> Option<(&str, Option<&str>)> {
        match self {
            Self::Area { province, county } => Some((province, county.as_deref())),
            _ => None,
        }
    }
}
