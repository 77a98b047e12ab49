-- PostgreSQL's migration V14: schedules, the jobs their fires make (`schedule_id`,
-- `scheduled_for`, `overlap`) and the status `SKIPPED`. SQLite cannot change a CHECK
-- constraint in place, so `jobs` is made again with the new one.
CREATE TABLE schedules (
    id                  TEXT    PRIMARY KEY,
    name                TEXT,
    cron                TEXT,
    every_ms            INTEGER CHECK (every_ms > 0),
    timezone            TEXT    NOT NULL DEFAULT 'UTC',
    job                 TEXT    NOT NULL,
    overlap             TEXT    NOT NULL DEFAULT 'skip'
                        CHECK (overlap IN ('skip', 'buffer_one', 'allow_all', 'cancel_previous')),
    catchup_window_secs INTEGER NOT NULL DEFAULT 60 CHECK (catchup_window_secs >= 0),
    jitter_secs         INTEGER NOT NULL DEFAULT 0 CHECK (jitter_secs >= 0),
    start_at            INTEGER,
    end_at              INTEGER,
    paused              INTEGER NOT NULL DEFAULT 0,
    pause_note          TEXT,
    keep_last           INTEGER NOT NULL DEFAULT 100 CHECK (keep_last >= 0),
    next_fire_at        INTEGER,
    missed_fires        INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    CHECK ((cron IS NULL) <> (every_ms IS NULL))
);
CREATE INDEX schedules_next_fire_idx ON schedules (next_fire_at)
    WHERE NOT paused AND next_fire_at IS NOT NULL;

CREATE TABLE jobs_next (
    id              TEXT    PRIMARY KEY,
    name            TEXT,
    kind            TEXT    NOT NULL DEFAULT 'shell'
                    CHECK (kind IN ('shell', 'noop', 'http', 'kafka')),
    command         TEXT    NOT NULL CHECK (kind <> 'shell' OR command <> ''),
    execute_at      INTEGER NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'SCHEDULED'
                    CHECK (status IN ('SCHEDULED', 'DISPATCHED', 'RUNNING', 'RETRYING',
                                      'SUCCESS', 'FAILED', 'CANCELLED', 'SKIPPED')),
    max_retries     INTEGER NOT NULL DEFAULT 3 CHECK (max_retries BETWEEN 0 AND 10),
    timeout_secs    INTEGER NOT NULL CHECK (timeout_secs > 0),
    metadata        TEXT    NOT NULL DEFAULT '{}',
    attempts        INTEGER NOT NULL DEFAULT 0,
    epoch           INTEGER NOT NULL DEFAULT 0,
    claimed_by      TEXT,
    claimed_at      INTEGER,
    started_at      INTEGER,
    finished_at     INTEGER,
    exit_code       INTEGER,
    last_output     TEXT,
    last_error      TEXT,
    lease_until     INTEGER,
    lost_attempts   INTEGER NOT NULL DEFAULT 0,
    runner          TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    run_lease_until INTEGER,
    last_stderr     TEXT,
    last_outcome    TEXT,
    spec            TEXT,
    retry_backoff   TEXT,
    rerun_of        TEXT,
    cancelled_at    INTEGER,
    schedule_id     TEXT,
    scheduled_for   INTEGER,
    overlap         TEXT
);

INSERT INTO jobs_next (id, name, kind, command, execute_at, status, max_retries, timeout_secs,
    metadata, attempts, epoch, claimed_by, claimed_at, started_at, finished_at, exit_code,
    last_output, last_error, lease_until, lost_attempts, runner, created_at, updated_at,
    run_lease_until, last_stderr, last_outcome, spec, retry_backoff, rerun_of, cancelled_at)
SELECT id, name, kind, command, execute_at, status, max_retries, timeout_secs,
    metadata, attempts, epoch, claimed_by, claimed_at, started_at, finished_at, exit_code,
    last_output, last_error, lease_until, lost_attempts, runner, created_at, updated_at,
    run_lease_until, last_stderr, last_outcome, spec, retry_backoff, rerun_of, cancelled_at
FROM jobs;

DROP VIEW job_history;
DROP TRIGGER jobs_delete_attempts;
DROP TABLE jobs;
ALTER TABLE jobs_next RENAME TO jobs;

CREATE INDEX jobs_scheduled_due_idx ON jobs (execute_at) WHERE status = 'SCHEDULED';
CREATE INDEX jobs_status_id_idx ON jobs (status, id DESC);
CREATE INDEX jobs_in_flight_lease_idx ON jobs (lease_until)
    WHERE status IN ('DISPATCHED', 'RUNNING', 'RETRYING');

CREATE UNIQUE INDEX jobs_schedule_fire_idx ON jobs (schedule_id, scheduled_for)
    WHERE schedule_id IS NOT NULL;
CREATE INDEX jobs_schedule_id_idx ON jobs (schedule_id, id) WHERE schedule_id IS NOT NULL;
CREATE INDEX jobs_schedule_unfinished_idx ON jobs (schedule_id, scheduled_for)
    WHERE schedule_id IS NOT NULL
      AND status IN ('SCHEDULED', 'DISPATCHED', 'RUNNING', 'RETRYING');

CREATE VIEW job_history AS
    SELECT job_id, attempt, epoch, status, scheduled_at, started_at, finished_at, exit_code,
           stdout, stderr, error
    FROM job_attempts
    UNION ALL
    SELECT id, 1, epoch, last_outcome, execute_at, started_at, finished_at, exit_code,
           last_output, last_stderr, last_error
    FROM jobs
    WHERE attempts = 1 AND status IN ('SUCCESS', 'FAILED') AND last_outcome IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM job_attempts WHERE job_id = jobs.id AND attempt = 1);

-- Deleting a job deletes its attempts, as in PostgreSQL (migration V7's trigger).
CREATE TRIGGER jobs_delete_attempts AFTER DELETE ON jobs
BEGIN
    DELETE FROM job_attempts WHERE job_id = OLD.id;
END;
