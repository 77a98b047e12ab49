-- The jobs people create. Instants are timestamptz, so they are stored in UTC whatever the
-- session's time zone.
CREATE TABLE jobs (
    id           uuid        PRIMARY KEY,
    name         text,
    command      text        NOT NULL CHECK (command <> ''),
    execute_at   timestamptz NOT NULL,
    status       text        NOT NULL DEFAULT 'SCHEDULED'
                 CHECK (status IN ('SCHEDULED', 'RUNNING', 'SUCCESS', 'FAILED')),
    max_retries  integer     NOT NULL DEFAULT 3 CHECK (max_retries BETWEEN 0 AND 10),
    timeout_secs integer     NOT NULL CHECK (timeout_secs > 0),
    metadata     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- The scanner's question, "which scheduled jobs are due before T", reads this index only,
-- however many finished jobs the table holds.
CREATE INDEX jobs_scheduled_due_idx ON jobs (execute_at) WHERE status = 'SCHEDULED';
