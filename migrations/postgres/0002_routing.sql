-- The directory routing reads, the versioned policy, and what routing decided for each case.

create table provinces (
    province text primary key,
    -- JSON array of province codes, nearest first.
    neighbours text not null
);

create table counties (
    province text not null,
    county text not null,
    name_fa text not null,
    lat double precision not null,
    lon double precision not null,
    covered_by text,
    primary key (province, county)
);

create table service_points (
    service_point_id text primary key,
    kind text not null,
    province text not null,
    county text not null,
    name text not null,
    capacity bigint,
    occupancy bigint not null,
    -- The rest of the entry (position, hours, categories, admission) as JSON.
    details text not null,
    updated_at bigint not null
);

create index service_points_county_kind_idx on service_points (province, county, kind);

create table teams (
    team_id text primary key,
    province text not null,
    base_county text not null,
    name text not null,
    status text not null,
    load bigint not null,
    lat double precision,
    lon double precision,
    updated_at bigint not null
);

create index teams_county_idx on teams (province, base_county);

-- Every policy ever in force; the highest version is the current one.
create table policies (
    policy_version bigint primary key,
    document text not null,
    created_at bigint not null
);

-- Routing decisions, kept whole with every candidate considered; a re-route adds one.
create table routing_decisions (
    case_id uuid not null references cases (case_id),
    decision_no bigint not null,
    policy_version bigint not null,
    rule_id text not null,
    unrouted boolean not null,
    decision text not null,
    created_at bigint not null,
    primary key (case_id, decision_no)
);

-- A case sent to a service point: a referral, a notification of an outside body or a hand-over.
create table referrals (
    referral_id uuid primary key,
    case_id uuid not null references cases (case_id),
    service_point_id text not null,
    purpose text not null,
    status text not null,
    version bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);

create index referrals_case_idx on referrals (case_id);
create index referrals_service_point_idx on referrals (service_point_id, status);

-- A mobile team sent to the scene.
create table dispatches (
    dispatch_id uuid primary key,
    case_id uuid not null references cases (case_id),
    team_id text not null,
    status text not null,
    version bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);

create index dispatches_case_idx on dispatches (case_id);
create index dispatches_team_idx on dispatches (team_id, status);

alter table cases add column routing_status text not null default 'not_routed';
