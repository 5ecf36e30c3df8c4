-- Webhook deliveries seen inside the replay window, so a captured request sent again is refused by every
-- API process alike. Rows older than the window are deleted as new ones arrive.
CREATE TABLE webhook_deliveries (
    source      text NOT NULL,
    delivery_id text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, delivery_id)
);
CREATE INDEX webhook_deliveries_received_at ON webhook_deliveries (received_at);
