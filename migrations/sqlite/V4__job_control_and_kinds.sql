-- PostgreSQL's migration V13: `CANCELLED`, the kinds `http` and `kafka`, their fields, a job's
-- own retry backoff, re-runs, cancellations and idempotency keys. SQLite cannot change a CHECK
-- constraint in place, so `jobs` and `job_attempts` are made again with the new ones.
CREATE TABLE jobs_next (
    id              TEXT    PRIMARY KEY,
    name            TEXT,
    kind            TEXT    NOT NULL DEFAULT 'shell'
                    CHECK (kind IN ('shell', 'noop', 'http', 'kafka')),
    command         TEXT    NOT NULL CHECK (kind <> 'shell' OR command <> ''),
    execute_at      INTEGER NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'SCHEDULED'
                    CHECK (status IN ('SCHEDULED', 'DISPATCHED', 'RUNNING', 'RETRYING',
                                      'SUCCESS', 'FAILED', 'CANCELLED')),
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
    cancelled_at    INTEGER
);
INSERT INTO jobs_next (id, name, kind, command, execute_at, status, max_retries, timeout_secs,
    metadata, attempts, epoch, claimed_by, claimed_at, started_at, finished_at, exit_code,
    last_output, last_error, lease_until, lost_attempts, runner, created_at, updated_at,
    run_lease_until, last_stderr, last_outcome)
SELECT id, name, kind, command, execute_at, status, max_retries, timeout_secs, metadata,
    attempts, epoch, claimed_by, claimed_at, started_at, finished_at, exit_code, last_output,
    last_error, lease_until, lost_attempts, runner, created_at, updated_at, run_lease_until,
    last_stderr, last_outcome
FROM jobs;

CREATE TABLE job_attempts_next (
    job_id       TEXT    NOT NULL,
    attempt      INTEGER NOT NULL CHECK (attempt > 0),
    epoch        INTEGER NOT NULL,
    status       TEXT    NOT NULL
                 CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'LOST',
                                   'CANCELLED')),
    scheduled_at INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    exit_code    INTEGER,
    stdout       TEXT,
    stderr       TEXT,
    error        TEXT,
    PRIMARY KEY (job_id, attempt)
);
INSERT INTO job_attempts_next SELECT * FROM job_attempts;

DROP VIEW job_history;
DROP TABLE job_attempts;
DROP TABLE jobs;
ALTER TABLE jobs_next RENAME TO jobs;
ALTER TABLE job_attempts_next RENAME TO job_attempts;

CREATE INDEX jobs_scheduled_due_idx ON jobs (execute_at) WHERE status = 'SCHEDULED';
CREATE INDEX jobs_status_id_idx ON jobs (status, id DESC);
CREATE INDEX jobs_in_flight_lease_idx ON jobs (lease_until)
    WHERE status IN ('DISPATCHED', 'RUNNING', 'RETRYING');

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

CREATE TABLE cancellations (
    job_id       TEXT    PRIMARY KEY,
    runner       TEXT    NOT NULL,
    requested_at INTEGER NOT NULL
);

CREATE TABLE idempotency_keys (
    key          TEXT    PRIMARY KEY,
    request_hash TEXT    NOT NULL,
    job_id       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
);

-- Deleting a job deletes its attempts, as in PostgreSQL (migration V7's trigger).
CREATE TRIGGER jobs_delete_attempts AFTER DELETE ON jobs
BEGIN
    DELETE FROM job_attempts WHERE job_id = OLD.id;
END;
