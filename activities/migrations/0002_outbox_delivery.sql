-- Outbox delivery: a row is claimed (`sending`) before its send and settled after, so a crash leaves a
-- visible trace instead of a silent duplicate. `unknown` means the provider may hold the message and
-- cannot deduplicate it (SMTP): an operator decides, the system never re-sends it by itself.
ALTER TABLE notifications DROP CONSTRAINT notifications_state_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_state_check
    CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'unknown'));

ALTER TABLE notifications
    ADD COLUMN html        text,
    ADD COLUMN facts       jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN claimed_at  timestamptz,
    ADD COLUMN claimed_by  text,
    ADD COLUMN provider_id text,
    ADD COLUMN settled_at  timestamptz,
    ADD COLUMN attempt_log jsonb NOT NULL DEFAULT '[]';

CREATE INDEX notifications_attention ON notifications (created_at) WHERE state IN ('sending', 'failed', 'unknown');
