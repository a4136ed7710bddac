-- The team queue: a P0 or P1 case that found no free mobile team waits here, per province, for
-- the next team that becomes free in its cover chain (highest priority first, then oldest). A
-- wait ends when a team is sent (`dispatch_id` names the dispatch), or the case is closed or
-- lowered below P1; ended waits stay for the statistics of how long cases waited.
create table team_waits (
    wait_id uuid primary key,
    case_id uuid not null references cases (case_id),
    province text not null,
    -- The case's priority while it waits: 0 for P0, 1 for P1 (lower is served first).
    rank bigint not null,
    since bigint not null,
    ended_at bigint,
    -- 'team', 'closed' or 'lowered'.
    ended_by text,
    dispatch_id uuid
);

create index team_waits_open_idx on team_waits (rank, since) where ended_at is null;
create index team_waits_case_idx on team_waits (case_id);
create index team_waits_since_idx on team_waits (since);
