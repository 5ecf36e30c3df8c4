-- The body each API idempotency key was first sent with, for one action on one case, so the key sent
-- again with another body is refused instead of answered with the first action's outcome. Rows older
-- than the API's retention are deleted as new ones arrive. `claims` counts the requests that claimed the
-- key, so a refused request forgets it only if no other request claimed it since.
CREATE TABLE action_keys (
    workflow_id   text NOT NULL,
    update_id     text NOT NULL,
    fingerprint   text NOT NULL,
    claims        integer NOT NULL DEFAULT 1,
    first_sent_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, update_id)
);
CREATE INDEX action_keys_first_sent_at ON action_keys (first_sent_at);
