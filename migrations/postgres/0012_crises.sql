-- Crisis declarations: while one is in force in its province (or, with no province, the whole
-- country) routing opens service points round the clock, puts the declaration's rules before
-- the policy's, raises some categories' priority and sets its own deadline targets. Nothing in
-- the directory or the policy is edited, so nothing has to be undone when it ends.
create table crises (
    crisis_id uuid primary key,
    -- The province it covers (ISO 3166-2:IR); empty for the whole country.
    province text not null,
    name text not null,
    starts_at bigint not null,
    -- Unset while no end is declared.
    ends_at bigint,
    -- What changes while it is in force, as JSON. Not sensitive.
    measures text not null,
    -- Moved by every change; a change names the version it was based on.
    version bigint not null,
    declared_by text not null,
    updated_by text not null,
    updated_at bigint not null
);

create index crises_province_idx on crises (province, starts_at);

-- A declaration's events are on the feed of its province, with no case.
alter table events alter column case_id drop not null;
