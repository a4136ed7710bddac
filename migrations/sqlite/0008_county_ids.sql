-- A county's stable id: its OpenStreetMap relation id (seed/counties.tsv). Empty for a county
-- added by hand that the built-in geography does not know.
alter table counties add column county_id text;
