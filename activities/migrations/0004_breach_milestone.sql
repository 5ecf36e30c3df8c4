-- A breach entry names its milestone in `data.milestone`, so reports never read the wording. Entries
-- written before that carry it only in the detail ("<milestone> missed its ... target"): copied once here.
UPDATE case_events
SET data = data || jsonb_build_object('milestone', split_part(detail, ' ', 1))
WHERE type = 'sla_breached' AND NOT data ? 'milestone'
  AND split_part(detail, ' ', 1) IN ('first_response', 'data_verified', 'troubleshooting');
