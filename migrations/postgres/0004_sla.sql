-- Service-level timers: each deadline a case must meet, kept in the database so that a restart
-- loses none. A timer is pending until the step it waits for happens (met), the thing it times
-- goes away (cancelled), or its deadline passes (breached, and escalated).
create table sla_timers (
    timer_id uuid primary key,
    case_id uuid not null references cases (case_id),
    kind text not null,
    -- The dispatch, referral or follow-up timed; null for the case itself.
    subject_id uuid,
    due_at bigint not null,
    state text not null,
    created_at bigint not null,
    resolved_at bigint
);

create index sla_timers_pending_idx on sla_timers (state, due_at);
create index sla_timers_subject_idx on sla_timers (subject_id);
create index sla_timers_case_idx on sla_timers (case_id);
