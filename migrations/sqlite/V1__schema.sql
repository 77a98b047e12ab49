-- The standalone mode's schema: the tables of migrations/postgres, as they stand after its
-- last migration, in SQLite. Ids are UUID text (UUIDv7, so their text sorts by creation
-- time); instants are INTEGER microseconds since the Unix epoch, so that comparing and
-- ordering them is numeric. See migrations/postgres for what each column means.
CREATE TABLE jobs (
    id            TEXT    PRIMARY KEY,
    name          TEXT,
    kind          TEXT    NOT NULL DEFAULT 'shell' CHECK (kind IN ('shell', 'noop')),
    command       TEXT    NOT NULL CHECK (kind <> 'shell' OR command <> ''),
    execute_at    INTEGER NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'SCHEDULED'
                  CHECK (status IN ('SCHEDULED', 'DISPATCHED', 'RUNNING', 'RETRYING', 'SUCCESS', 'FAILED')),
    max_retries   INTEGER NOT NULL DEFAULT 3 CHECK (max_retries BETWEEN 0 AND 10),
    timeout_secs  INTEGER NOT NULL CHECK (timeout_secs > 0),
    metadata      TEXT    NOT NULL DEFAULT '{}',
    attempts      INTEGER NOT NULL DEFAULT 0,
    epoch         INTEGER NOT NULL DEFAULT 0,
    claimed_by    TEXT,
    claimed_at    INTEGER,
    started_at    INTEGER,
    finished_at   INTEGER,
    exit_code     INTEGER,
    last_output   TEXT,
    last_error    TEXT,
    lease_until   INTEGER,
    lost_attempts INTEGER NOT NULL DEFAULT 0,
    runner        TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE INDEX jobs_scheduled_due_idx ON jobs (execute_at) WHERE status = 'SCHEDULED';
CREATE INDEX jobs_status_id_idx ON jobs (status, id DESC);
CREATE INDEX jobs_in_flight_lease_idx ON jobs (lease_until)
    WHERE status IN ('DISPATCHED', 'RUNNING', 'RETRYING');

CREATE TABLE job_attempts (
    job_id       TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL CHECK (attempt > 0),
    epoch        INTEGER NOT NULL,
    status       TEXT    NOT NULL
                 CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'LOST')),
    scheduled_at INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    exit_code    INTEGER,
    stdout       TEXT,
    stderr       TEXT,
    error        TEXT,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE instances (
    id           TEXT    PRIMARY KEY,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
