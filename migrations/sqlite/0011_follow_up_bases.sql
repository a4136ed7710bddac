-- A follow-up handed to a social-service base: the base that does it and records its outcome.
alter table follow_ups add column service_point_id text;
