-- The keys of changes sent with a request id (a status report, a transition, a note...): a retry
-- with the same key and the same content is answered with the first outcome, kept here, and
-- changes nothing; the same key with other content is refused. Keys are per caller.
create table change_keys (
    subject text not null,
    request_id text not null,
    payload_hash blob not null,
    -- What the change did, as its answer said it (JSON); empty for a directory update.
    outcome text not null,
    created_at integer not null,
    primary key (subject, request_id)
) strict;
