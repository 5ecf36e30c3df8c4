-- A ticket opened again (after Temporal's retention, a delete or a reset) is a new life of its case:
-- its rows are keyed apart from the first life's, which stay. `life` is the first run id of the life
-- ('' for rows written before lives were kept apart); the `cases` row shows the live one.
ALTER TABLE cases
    ADD COLUMN life  text NOT NULL DEFAULT '',
    ADD COLUMN as_of timestamptz;

ALTER TABLE case_events ADD COLUMN life text NOT NULL DEFAULT '';
ALTER TABLE case_events DROP CONSTRAINT case_events_pkey;
ALTER TABLE case_events ADD PRIMARY KEY (workflow_id, life, seq);
-- An entry PostgreSQL refused as it was (a data error no retry fixes) is kept in a safe form, with why.
ALTER TABLE case_events ADD COLUMN storage_error text;

ALTER TABLE escalations ADD COLUMN life text NOT NULL DEFAULT '';
ALTER TABLE escalations DROP CONSTRAINT escalations_workflow_id_engagement_level_key;
ALTER TABLE escalations ADD CONSTRAINT escalations_one_per_engagement UNIQUE (workflow_id, life, engagement, level);

ALTER TABLE notifications ADD COLUMN life text NOT NULL DEFAULT '';
-- The outbox relay looks for rows a case left behind.
CREATE INDEX notifications_relay ON notifications (coalesce(claimed_at, created_at)) WHERE state IN ('pending', 'sending');
CREATE INDEX case_events_damaged ON case_events (recorded_at) WHERE storage_error IS NOT NULL;
