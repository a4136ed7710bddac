-- Crisis declarations: while one is in force in its province (or, with no province, the whole
-- country) routing opens service points round the clock, puts the declaration's rules before
-- the policy's, raises some categories' priority and sets its own deadline targets. Nothing in
-- the directory or the policy is edited, so nothing has to be undone when it ends.
create table crises (
    crisis_id blob primary key,
    -- The province it covers (ISO 3166-2:IR); empty for the whole country.
    province text not null,
    name text not null,
    starts_at integer not null,
    -- Unset while no end is declared.
    ends_at integer,
    -- What changes while it is in force, as JSON. Not sensitive.
    measures text not null,
    -- Moved by every change; a change names the version it was based on.
    version integer not null,
    declared_by text not null,
    updated_by text not null,
    updated_at integer not null
) strict;

create index crises_province_idx on crises (province, starts_at);

-- A declaration's events are on the feed of its province, with no case. SQLite cannot drop a
-- column's NOT NULL, so the table is rebuilt with every row, index and trigger as it was.
create table events_rebuilt (
    event_id integer primary key,
    case_id blob references cases (case_id),
    kind text not null,
    actor text not null,
    occurred_at integer not null,
    reason text,
    data blob not null,
    line text not null default '',
    province text not null default '',
    county text not null default '',
    priority text not null default '',
    team_id text,
    recorded_by text not null default '',
    hash blob
) strict;

insert into events_rebuilt (event_id, case_id, kind, actor, occurred_at, reason, data, line,
    province, county, priority, team_id, recorded_by, hash)
select event_id, case_id, kind, actor, occurred_at, reason, data, line, province, county,
    priority, team_id, recorded_by, hash
from events;

drop table events;
alter table events_rebuilt rename to events;

create index events_case_idx on events (case_id, event_id);
create index events_team_idx on events (team_id, event_id) where team_id is not null;
create index events_recorded_by_idx on events (recorded_by, event_id);

create trigger events_no_update before update on events
begin
    select raise(abort, 'events are append-only');
end;

create trigger events_no_delete before delete on events
begin
    select raise(abort, 'events are append-only');
end;
