-- Tracking: what the event feed's watchers filter on, each dispatch's steps, notes, follow-ups,
-- and how a case was closed.

-- The feed is filtered by the case's place, line and priority, and a team's stream by its team,
-- as they stood when the event was written: a replay then shows exactly what was streamed live.
alter table events add column line text not null default '';
alter table events add column province text not null default '';
alter table events add column county text not null default '';
alter table events add column priority text not null default '';
alter table events add column team_id text;

update events set
    line = (select c.line from cases c where c.case_id = events.case_id),
    province = (select c.province from cases c where c.case_id = events.case_id),
    county = (select c.county from cases c where c.case_id = events.case_id),
    priority = (select c.priority from cases c where c.case_id = events.case_id);

create index events_team_idx on events (team_id, event_id) where team_id is not null;

alter table cases add column outcome text;

alter table referrals add column reason text;

alter table dispatches add column reason text;

-- Every status a dispatch went through, with its time and the team's position when sent, so
-- response intervals can be measured.
create table dispatch_steps (
    dispatch_id blob not null references dispatches (dispatch_id),
    status text not null,
    occurred_at integer not null,
    lat real,
    lon real,
    primary key (dispatch_id, status)
) strict;

create table notes (
    note_id blob primary key,
    case_id blob not null references cases (case_id),
    actor text not null,
    created_at integer not null,
    -- The note's text. Sensitive.
    body blob not null
) strict;

create index notes_case_idx on notes (case_id, note_id);

create table follow_ups (
    follow_up_id blob primary key,
    case_id blob not null references cases (case_id),
    due_at integer not null,
    reason text not null,
    outcome text,
    done_at integer,
    created_at integer not null
) strict;

create index follow_ups_case_idx on follow_ups (case_id, follow_up_id);

-- Bumped by every change to a team's duty status or load or a service point's occupancy, so a
-- server sees that another server on the same database changed the live directory.
insert into sequences (name, last_value) values ('directory', 0);

-- The intake's dispatches start with an assigned step.
insert into dispatch_steps (dispatch_id, status, occurred_at)
    select dispatch_id, 'assigned', created_at from dispatches;
