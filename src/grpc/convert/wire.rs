//! The `referral.v1` counterparts of the domain's enumerations: one table per enumeration.

use super::*;

/// A domain enumeration with a `referral.v1` counterpart.
pub(super) trait WireEnum: Sized + Copy {
    /// Converts a wire number; `None` for `*_UNSPECIFIED` and unknown numbers.
    fn from_wire(raw: i32) -> Option<Self>;
    /// Converts to the wire number.
    fn to_wire(self) -> i32;
    /// The wire value's name, as the contract spells it (`CATEGORY_SPOUSE_ABUSE`).
    fn wire_name(self) -> &'static str;
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
                self.wire() as i32
            }

            fn wire_name(self) -> &'static str {
                self.wire().as_str_name()
            }
        }

        impl $name {
            fn wire(self) -> pb::$pb {
                match self {
                    $(Self::$same => pb::$pb::$same,)*
                    $($(Self::$domain => pb::$pb::$wire,)*)?
                }
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
    Multiple,
    Unknown
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
    Relationship { Parent, OtherFamily, Neighbour, Teacher, HealthWorker, Police, Friend, Other, Unknown },
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
