//! The enumerations of the case model. Each has a stable snake_case name, used in storage and in
//! the event feed, and the categories and priorities carry their Persian labels.

/// Declares a domain enumeration with its storage name (`as_str` / `FromStr`), serde support and
/// the list of its values.
macro_rules! domain_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident,)+ }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
            strum::EnumString, strum::IntoStaticStr, strum::VariantArray,
        )]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Returns the stable name used in storage and events.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    };
}

pub(crate) use domain_enum;

domain_enum! {
    /// The phone line a call came in on.
    pub enum Line {
        /// صدای مشاور ۱۴۸۰.
        #[serde(rename = "hotline_1480")]
        #[strum(serialize = "hotline_1480")]
        Hotline1480,
        /// اورژانس اجتماعی ۱۲۳.
        #[serde(rename = "emergency_123")]
        #[strum(serialize = "emergency_123")]
        Emergency123,
    }
}

impl Line {
    /// Returns the number people dial, which also starts the line's case references.
    pub fn dial_code(self) -> &'static str {
        match self {
            Self::Hotline1480 => "1480",
            Self::Emergency123 => "123",
        }
    }

    /// Returns the line's Persian name.
    pub fn label_fa(self) -> &'static str {
        match self {
            Self::Hotline1480 => "صدای مشاور ۱۴۸۰",
            Self::Emergency123 => "اورژانس اجتماعی ۱۲۳",
        }
    }
}

domain_enum! {
    /// What a case is about.
    pub enum Category {
        /// کودک‌آزاری جسمی.
        ChildAbusePhysical,
        /// کودک‌آزاری جنسی.
        ChildAbuseSexual,
        /// کودک‌آزاری عاطفی.
        ChildAbuseEmotional,
        /// غفلت از کودک.
        ChildNeglect,
        /// طفل در وضعیت مخاطره‌آمیز.
        ChildAtRisk,
        /// همسرآزاری.
        SpouseAbuse,
        /// سایر خشونت‌های خانگی.
        OtherDomesticViolence,
        /// سالمندآزاری.
        ElderAbuse,
        /// معلول‌آزاری.
        DisabledPersonAbuse,
        /// اقدام به خودکشی.
        SuicideAttempt,
        /// افکار خودکشی.
        SuicidalThoughts,
        /// فرار یا طرد از منزل.
        RunawayOrExpelled,
        /// زنان و دختران در معرض آسیب.
        WomenAndGirlsAtRisk,
        /// کودکان خیابانی و کار.
        StreetAndWorkingChildren,
        /// اختلافات حاد خانوادگی.
        AcuteFamilyConflict,
        /// بحران طلاق.
        DivorceCrisis,
        /// کارتن‌خوابی.
        Homelessness,
        /// اعتیاد.
        Addiction,
        /// پریشانی روانی.
        PsychologicalDistress,
        /// مشاوره ازدواج و پیش از ازدواج.
        MarriageAndPremarital,
        /// فرزندپروری.
        Parenting,
        /// مشاوره تحصیلی.
        Educational,
        /// حمایت روانی-اجتماعی در بلایا.
        DisasterPsychosocial,
        /// بیماری روانی مزمن در بحران.
        ChronicMentalIllnessCrisis,
        /// فقط اطلاعات.
        InformationOnly,
        /// تماس مزاحم یا بی‌صدا.
        NuisanceOrSilent,
    }
}

impl Category {
    /// Returns the category's Persian label.
    pub fn label_fa(self) -> &'static str {
        match self {
            Self::ChildAbusePhysical => "کودک‌آزاری جسمی",
            Self::ChildAbuseSexual => "کودک‌آزاری جنسی",
            Self::ChildAbuseEmotional => "کودک‌آزاری عاطفی",
            Self::ChildNeglect => "غفلت از کودک",
            Self::ChildAtRisk => "طفل در وضعیت مخاطره‌آمیز",
            Self::SpouseAbuse => "همسرآزاری",
            Self::OtherDomesticViolence => "سایر خشونت‌های خانگی",
            Self::ElderAbuse => "سالمندآزاری",
            Self::DisabledPersonAbuse => "معلول‌آزاری",
            Self::SuicideAttempt => "اقدام به خودکشی",
            Self::SuicidalThoughts => "افکار خودکشی",
            Self::RunawayOrExpelled => "فرار یا طرد از منزل",
            Self::WomenAndGirlsAtRisk => "زنان و دختران در معرض آسیب",
            Self::StreetAndWorkingChildren => "کودکان خیابانی و کار",
            Self::AcuteFamilyConflict => "اختلافات حاد خانوادگی",
            Self::DivorceCrisis => "بحران طلاق",
            Self::Homelessness => "کارتن‌خوابی",
            Self::Addiction => "اعتیاد",
            Self::PsychologicalDistress => "پریشانی روانی",
            Self::MarriageAndPremarital => "مشاوره ازدواج و پیش از ازدواج",
            Self::Parenting => "فرزندپروری",
            Self::Educational => "مشاوره تحصیلی",
            Self::DisasterPsychosocial => "حمایت روانی-اجتماعی در بلایا",
            Self::ChronicMentalIllnessCrisis => "بیماری روانی مزمن در بحران",
            Self::InformationOnly => "فقط اطلاعات",
            Self::NuisanceOrSilent => "تماس مزاحم یا بی‌صدا",
        }
    }

    /// True for the forms of abuse of a person by someone close (child, spouse, elder, disabled).
    pub fn is_abuse(self) -> bool {
        matches!(
            self,
            Self::ChildAbusePhysical
                | Self::ChildAbuseSexual
                | Self::ChildAbuseEmotional
                | Self::ChildNeglect
                | Self::SpouseAbuse
                | Self::OtherDomesticViolence
                | Self::ElderAbuse
                | Self::DisabledPersonAbuse
        )
    }

    /// True for the categories about a child's safety.
    pub fn concerns_a_child(self) -> bool {
        matches!(
            self,
            Self::ChildAbusePhysical
                | Self::ChildAbuseSexual
                | Self::ChildAbuseEmotional
                | Self::ChildNeglect
                | Self::ChildAtRisk
                | Self::StreetAndWorkingChildren
        )
    }
}

domain_enum! {
    /// Urgency of a case. The order is urgency order: `P0Immediate` sorts first.
    pub enum Priority {
        /// فوری: life at risk now.
        P0Immediate,
        /// اضطراری: high risk, not yet in progress.
        P1Urgent,
        /// دارای اولویت: needs a visit or call within days.
        P2Priority,
        /// عادی: counselling needs.
        P3Routine,
        /// خارج از شرح وظایف: recorded for statistics only.
        P4OutsideMandate,
    }
}

impl Priority {
    /// The level as a number, 0 for P0 to 4 for P4: lower is more urgent.
    pub fn level(self) -> usize {
        match self {
            Self::P0Immediate => 0,
            Self::P1Urgent => 1,
            Self::P2Priority => 2,
            Self::P3Routine => 3,
            Self::P4OutsideMandate => 4,
        }
    }

    /// Returns the level's short code, `P0` to `P4`.
    pub fn code(self) -> &'static str {
        match self {
            Self::P0Immediate => "P0",
            Self::P1Urgent => "P1",
            Self::P2Priority => "P2",
            Self::P3Routine => "P3",
            Self::P4OutsideMandate => "P4",
        }
    }

    /// Returns the level's Persian label.
    pub fn label_fa(self) -> &'static str {
        match self {
            Self::P0Immediate => "فوری",
            Self::P1Urgent => "اضطراری",
            Self::P2Priority => "دارای اولویت",
            Self::P3Routine => "عادی",
            Self::P4OutsideMandate => "خارج از شرح وظایف",
        }
    }

    /// True when `self` is more urgent than `other`.
    pub fn is_more_urgent_than(self, other: Priority) -> bool {
        self < other
    }
}

domain_enum! {
    /// Where a case stands in its lifecycle.
    pub enum CaseStatus {
        /// باز.
        Open,
        /// در انتظار پیگیری.
        AwaitingFollowUp,
        /// بسته.
        Closed,
    }
}

impl CaseStatus {
    /// Returns the status's Persian label.
    pub fn label_fa(self) -> &'static str {
        match self {
            Self::Open => "باز",
            Self::AwaitingFollowUp => "در انتظار پیگیری",
            Self::Closed => "بسته",
        }
    }
}

domain_enum! {
    /// How a contact reached the line.
    pub enum Channel {
        /// A voice call.
        Voice,
        /// A text chat.
        Chat,
    }
}

domain_enum! {
    /// Sex of a subject as reported.
    pub enum Sex {
        /// زن.
        Female,
        /// مرد.
        Male,
        /// Not known or not disclosed.
        Unknown,
    }
}

domain_enum! {
    /// A subject's age when the exact age is not known.
    pub enum AgeBand {
        /// 0 to 5 years.
        EarlyChildhood,
        /// 6 to 11 years.
        Child,
        /// 12 to 14 years.
        YoungAdolescent,
        /// 15 to 17 years.
        OlderAdolescent,
        /// 18 to 29 years.
        YoungAdult,
        /// 30 to 59 years.
        Adult,
        /// 60 years or more.
        OlderAdult,
        /// Not known.
        Unknown,
    }
}

impl AgeBand {
    /// Whether the band is entirely under 18, entirely adult, or not known.
    pub fn is_minor(self) -> Option<bool> {
        match self {
            Self::EarlyChildhood | Self::Child | Self::YoungAdolescent | Self::OlderAdolescent => {
                Some(true)
            }
            Self::YoungAdult | Self::Adult | Self::OlderAdult => Some(false),
            Self::Unknown => None,
        }
    }
}

domain_enum! {
    /// Nationality or document status of a subject.
    pub enum Nationality {
        /// Iranian.
        Iranian,
        /// Afghan national with an Amayesh card.
        AfghanCardHolder,
        /// Another foreign national with documents.
        OtherForeign,
        /// Undocumented.
        Undocumented,
        /// Not known.
        Unknown,
    }
}

domain_enum! {
    /// Disability of a subject, as reported.
    pub enum Disability {
        /// None known.
        NoneKnown,
        /// Physical.
        Physical,
        /// Intellectual.
        Intellectual,
        /// Sensory.
        Sensory,
        /// Psycho-social.
        Psychosocial,
        /// More than one.
        Multiple,
        /// Not known: the caller could not say.
        Unknown,
    }
}

domain_enum! {
    /// Language a subject speaks best.
    pub enum Language {
        /// فارسی.
        Persian,
        /// ترکی آذربایجانی.
        Azerbaijani,
        /// کردی.
        Kurdish,
        /// عربی.
        Arabic,
        /// بلوچی.
        Baluchi,
        /// لری.
        Luri,
        /// گیلکی.
        Gilaki,
        /// مازندرانی.
        Mazandarani,
        /// ترکمنی.
        Turkmen,
        /// دری یا پشتو.
        DariOrPashto,
        /// Another language.
        Other,
        /// Not known.
        Unknown,
    }
}

domain_enum! {
    /// Relationship of the reporter to the subject.
    pub enum Relationship {
        /// The subject calls about themself.
        OneSelf,
        /// A parent.
        Parent,
        /// Other family.
        OtherFamily,
        /// A neighbour.
        Neighbour,
        /// A teacher or school staff.
        Teacher,
        /// A doctor or health worker.
        HealthWorker,
        /// Police.
        Police,
        /// A friend or acquaintance.
        Friend,
        /// Someone else.
        Other,
        /// Not known (a silent call, a caller who would not say).
        Unknown,
    }
}

domain_enum! {
    /// Kind of place where the incident is.
    pub enum PlaceType {
        /// A home.
        Home,
        /// A street.
        Street,
        /// A school.
        School,
        /// A park.
        Park,
        /// A workplace.
        Workplace,
        /// A health facility.
        HealthFacility,
        /// Public transport or a terminal.
        PublicTransport,
        /// Another place.
        Other,
        /// Not known.
        Unknown,
    }
}

domain_enum! {
    /// Answer to one screening question.
    pub enum Answer {
        /// Yes.
        Yes,
        /// No.
        No,
        /// Not known or not asked.
        Unknown,
    }
}

domain_enum! {
    /// How long ago the reported problem happened.
    pub enum Recency {
        /// Happening now.
        Ongoing,
        /// Within the last 24 hours.
        #[serde(rename = "last_24_hours")]
        #[strum(serialize = "last_24_hours")]
        Last24Hours,
        /// Within the last week.
        LastWeek,
        /// Longer ago.
        Older,
        /// Not known.
        Unknown,
    }
}

domain_enum! {
    /// What a 1480 counsellor asks the service to do with a case.
    pub enum HotlineAction {
        /// Refer the caller to a counselling centre.
        CounsellingCentreReferral,
        /// Hand the case over to 123 because of acute risk.
        #[serde(rename = "hand_over_to_123")]
        #[strum(serialize = "hand_over_to_123")]
        HandOverTo123,
        /// Refer to a specialised service.
        SpecialisedService,
    }
}

domain_enum! {
    /// What a 123 operator asks the service to do with a case.
    pub enum EmergencyAction {
        /// Resolved by phone.
        ResolvedByPhone,
        /// Send a mobile team.
        MobileTeam,
        /// Place the subject in a centre.
        Placement,
    }
}

domain_enum! {
    /// Where a referral stands (FHIR Task subset).
    pub enum ReferralStatus {
        /// Sent, waiting for the receiving side.
        Requested,
        /// Accepted by the receiving side.
        Accepted,
        /// Refused by the receiving side.
        Rejected,
        /// Being worked.
        InProgress,
        /// Paused.
        OnHold,
        /// Done.
        Completed,
        /// Could not be done.
        Failed,
        /// Withdrawn by the requesting side.
        Cancelled,
    }
}

domain_enum! {
    /// Where a dispatch stands (after NENA EIDO).
    pub enum DispatchStatus {
        /// The team was given the case.
        Assigned,
        /// The team confirmed.
        Acknowledged,
        /// On the way.
        EnRoute,
        /// At the scene.
        OnScene,
        /// Taking someone somewhere.
        Transporting,
        /// Done.
        Cleared,
        /// Called off before reaching the scene.
        Cancelled,
        /// Refused by the team before acknowledging (it is then routed to the next team).
        Declined,
    }
}

/// What an intake asks for; the variant also says which line it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestedAction {
    /// A 1480 intake's request.
    Hotline(HotlineAction),
    /// A 123 intake's request.
    Emergency(EmergencyAction),
}

impl RequestedAction {
    /// Returns the line the intake came in on.
    pub fn line(self) -> Line {
        match self {
            Self::Hotline(_) => Line::Hotline1480,
            Self::Emergency(_) => Line::Emergency123,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use strum::VariantArray;

    use super::*;

    #[test]
    fn every_category_round_trips_through_its_storage_name_and_has_a_persian_label() {
        for &category in Category::VARIANTS {
            assert_eq!(Category::from_str(category.as_str()), Ok(category));
            assert!(!category.label_fa().is_empty());
        }
    }

    #[test]
    fn priorities_sort_in_urgency_order() {
        assert!(Priority::P0Immediate.is_more_urgent_than(Priority::P1Urgent));
        assert!(!Priority::P4OutsideMandate.is_more_urgent_than(Priority::P3Routine));
        assert_eq!(Priority::P2Priority.as_str(), "p2_priority");
    }
}
