-- One row the health check writes and commits: health says SERVING only while a commit
-- completes, so a read-only or demoted database, or a primary whose synchronous standby is
-- gone, turns it NOT_SERVING.
create table health_probe (
    probe_id integer primary key,
    at bigint not null
);
