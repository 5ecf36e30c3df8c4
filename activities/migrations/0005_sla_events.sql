-- Every SLA clock's moments, one row per clock per timeline entry of type `sla_clock`: start, pause,
-- resume, retarget (a priority change), fulfil and breach. The report's breach figures and a case's
-- explained due instants are derived from these rows.
CREATE TABLE sla_events (
    workflow_id text NOT NULL,
    life        text NOT NULL DEFAULT '',
    seq         bigint NOT NULL,
    clock       text NOT NULL,
    event       text NOT NULL,
    at          timestamptz NOT NULL,
    engagement  integer NOT NULL DEFAULT 0,
    level       text,
    starts_at   timestamptz,
    target      interval,
    paused      interval NOT NULL DEFAULT interval '0',
    due_at      timestamptz,
    late        boolean NOT NULL DEFAULT false,
    PRIMARY KEY (workflow_id, life, seq, clock)
);
CREATE INDEX sla_events_by_clock ON sla_events (clock, event);
