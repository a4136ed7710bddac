-- A province's list (a provincial supervisor's or 123 centre's reach, or a province filter) is a
-- range walk of its own index, newest first. The (province, county, …) index serves it only by
-- reading and sorting every case of the province, which grows with the table; the list
-- benchmark in BENCHMARKS.md found it.
create index cases_province_idx on cases (province, created_at, case_id);
