-- Cases, their append-only timeline, Tech Lead tickets and the notification outbox.
CREATE TABLE cases (
    workflow_id      text PRIMARY KEY,
    ticket_id        text NOT NULL UNIQUE,
    priority         text NOT NULL,
    phase            text NOT NULL,
    customer_account text NOT NULL,
    customer_name    text NOT NULL,
    subject          text NOT NULL,
    assignee         text,
    opened_at        timestamptz NOT NULL,
    engaged_at       timestamptz,
    resolved_at      timestamptz,
    closed_at        timestamptz,
    close_reason     text,
    escalated        boolean NOT NULL DEFAULT false,
    sla_breached     boolean NOT NULL DEFAULT false,
    on_standup       boolean NOT NULL DEFAULT false,
    last_seq         integer NOT NULL,
    snapshot         jsonb NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE case_events (
    workflow_id text NOT NULL REFERENCES cases (workflow_id),
    seq         integer NOT NULL,
    at          timestamptz NOT NULL,
    type        text NOT NULL,
    actor       text,
    detail      text NOT NULL DEFAULT '',
    data        jsonb NOT NULL DEFAULT '{}',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, seq)
);

CREATE TABLE escalations (
    ticket_key  text PRIMARY KEY,
    workflow_id text NOT NULL REFERENCES cases (workflow_id),
    engagement  integer NOT NULL,
    level       text NOT NULL,
    priority    text NOT NULL,
    assignee    text NOT NULL,
    reason      text NOT NULL,
    raised_at   timestamptz NOT NULL,
    status      text NOT NULL DEFAULT 'open',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workflow_id, engagement, level)
);

CREATE TABLE notifications (
    dedupe_key  text PRIMARY KEY,
    workflow_id text NOT NULL,
    seq         integer NOT NULL,
    kind        text NOT NULL,
    channel     text NOT NULL,
    role        text NOT NULL,
    recipient   text NOT NULL,
    subject     text NOT NULL,
    body        text NOT NULL,
    state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);

CREATE INDEX notifications_pending ON notifications (created_at) WHERE state = 'pending';
CREATE INDEX cases_open ON cases (priority, phase) WHERE phase <> 'closed';
