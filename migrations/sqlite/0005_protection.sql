-- Protection: who recorded each case (a 1480 counsellor reads what it submitted), the audit
-- trail, and the hash chains over events and audit rows.

alter table cases add column recorded_by text not null default '';
create index cases_recorded_by_idx on cases (recorded_by, created_at, case_id);

-- The head of each hash chain: the hash of the last row written, kept with its counter so a
-- writer that takes numbers also takes the hash to chain from (null before the first row).
alter table sequences add column hash blob;

-- Who recorded the event's case: a 1480 centre watches the cases it recorded.
alter table events add column recorded_by text not null default '';
create index events_recorded_by_idx on events (recorded_by, event_id);

-- Each event's hash: SHA-256 over the previous event's hash and this event's columns.
alter table events add column hash blob;

-- Every read of a case's details and every change, refused attempts included.
create table audit_log (
    audit_id integer primary key,
    at integer not null,
    subject text not null,
    role text not null,
    action text not null,
    case_id blob,
    outcome text not null,
    request_id text not null,
    -- SHA-256 over the previous row's hash and this row's columns.
    hash blob not null
) strict;

create index audit_log_case_idx on audit_log (case_id, audit_id);
create index audit_log_subject_idx on audit_log (subject, audit_id);

insert into sequences (name, last_value) values ('audit', 0);

-- Append-only: neither the service nor anyone on its connection may edit or remove a row.
create trigger audit_log_no_update before update on audit_log
begin
    select raise(abort, 'audit_log is append-only');
end;

create trigger audit_log_no_delete before delete on audit_log
begin
    select raise(abort, 'audit_log is append-only');
end;

create trigger events_no_update before update on events
begin
    select raise(abort, 'events are append-only');
end;

create trigger events_no_delete before delete on events
begin
    select raise(abort, 'events are append-only');
end;

-- Encryption at rest: the keyed hash of each contact's caller number, so repeat calls link
-- without the clear number (which is sealed inside the contact's details).
alter table contacts add column caller_hash blob;
create index contacts_caller_hash_idx on contacts (caller_hash) where caller_hash is not null;

-- A team's position at each step, sealed (at the scene it is where the person is). The clear
-- lat and lon columns are no longer written; `referrals keys rotate` seals what they held.
alter table dispatch_steps add column position blob;
