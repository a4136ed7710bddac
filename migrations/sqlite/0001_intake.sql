-- Cases, their contacts and categories, idempotency keys and the event feed.
-- Times are microseconds since the Unix epoch (UTC) on both backends, so the two stores share
-- their row types. Ids are UUIDv7, stored as 16-byte blobs; they sort by creation time.

-- Counters that must advance in commit order: the event feed and each line's case numbers.
-- A writer takes its numbers with `update ... returning` inside its transaction, so a second
-- writer waits for the first to commit and numbers can never appear out of order.
create table sequences (
    name text primary key,
    last_value integer not null
) strict;

insert into sequences (name, last_value) values
    ('event', 0),
    ('case_hotline_1480', 0),
    ('case_emergency_123', 0);

create table cases (
    case_id blob primary key,
    reference text not null unique,
    line text not null,
    status text not null,
    priority text not null,
    computed_priority text not null,
    primary_category text not null,
    province text not null,
    county text not null,
    minors_involved integer not null,
    version integer not null,
    created_at integer not null,
    updated_at integer not null,
    -- The intake, the requested action and triage as JSON. Holds sensitive fields.
    details blob not null
) strict;

-- Lists go newest first by (created_at, case_id): one index per filter, each ending in those
-- two columns so a page is a range walk of the index.
create index cases_created_idx on cases (created_at, case_id);
create index cases_line_idx on cases (line, created_at, case_id);
create index cases_priority_idx on cases (priority, created_at, case_id);
create index cases_province_county_idx on cases (province, county, created_at, case_id);
create index cases_status_idx on cases (status, created_at, case_id);

create table case_categories (
    case_id blob not null references cases (case_id),
    category text not null,
    is_primary integer not null,
    primary key (case_id, category)
) strict;

create index case_categories_category_idx on case_categories (category, case_id);

create table contacts (
    contact_id blob primary key,
    case_id blob not null references cases (case_id),
    line text not null,
    external_call_id text not null,
    recorded_at integer not null,
    -- The contact as JSON. Holds the caller's number.
    details blob not null
) strict;

create index contacts_case_idx on contacts (case_id, contact_id);

create table idempotency_keys (
    line text not null,
    request_id text not null,
    payload_hash blob not null,
    case_id blob not null references cases (case_id),
    -- The original receipt as JSON, returned again on a retry.
    receipt blob not null,
    created_at integer not null,
    primary key (line, request_id)
) strict;

-- Every change to a case. event_id is the global sequence number, in commit order.
create table events (
    event_id integer primary key,
    case_id blob not null references cases (case_id),
    kind text not null,
    actor text not null,
    occurred_at integer not null,
    reason text,
    -- Non-sensitive facts of the change as JSON.
    data blob not null
) strict;

create index events_case_idx on events (case_id, event_id);
