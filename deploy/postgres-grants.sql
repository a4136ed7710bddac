-- What the service's PostgreSQL role may do, and nothing more. Run it as the role that owns the
-- tables (the one `referrals migrate` ran as), after every migration:
--
--     referrals migrate --database-url postgres://OWNER@HOST/DB --grant-to SERVICE_ROLE
-- or
--     psql postgres://OWNER@HOST/DB -v role=SERVICE_ROLE -f postgres-grants.sql
--
-- The service role then owns nothing, so it runs no DDL (it cannot create, alter or drop a
-- table, nor disable a trigger), and it deletes and truncates nothing. The events and the audit
-- trail it may only read and append to: even with their append-only triggers dropped by the
-- owner, the service's credentials cannot change or remove a row of either.

-- Start from nothing, so a privilege given by hand earlier does not linger.
revoke all on all tables in schema public from :"role";
revoke all on schema public from :"role";
grant usage on schema public to :"role";

-- `referrals serve` checks that the schema is the build's before it serves.
grant select on _sqlx_migrations to :"role";

-- The append-only trail: read and append.
grant select, insert on events, audit_log to :"role";

-- Rows written once: a case's categories, the idempotency keys of intakes and changes, the
-- policy versions.
grant select, insert on case_categories, idempotency_keys, change_keys, policies to :"role";

-- Rows that change in place: counters and chain heads, cases and what hangs off them (sealed
-- columns are rewritten by `referrals keys rotate` and `keys reseal`), the directory, the
-- deadlines and the health probe's row.
grant select, insert, update on
    sequences, cases, contacts, notes, follow_ups, routing_decisions, referrals, dispatches,
    dispatch_steps, sla_timers, team_waits, provinces, counties, service_points, teams,
    health_probe, crises
    to :"role";
