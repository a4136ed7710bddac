-- A batch's lookups in one statement (PostgreSQL): see LOOKUPS in src/store/postgres.rs.
with counters as (select name, last_value, hash from sequences  where name in ('case_hotline_1480', 'case_emergency_123', 'directory', 'event', 'audit')  for update)
select 0, line, request_id, payload_hash, receipt, null::bigint from idempotency_keys  where (line, request_id) in (select * from unnest($1::text[], $2::text[])) 
union all
 select 1, null, null, caller_hash, null, count(*) from contacts  where caller_hash = any($3::bytea[]) group by caller_hash 
union all
 select 2, name, null, hash, null, last_value from counters
