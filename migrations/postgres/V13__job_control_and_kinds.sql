-- Job control and more kinds of job.
--
-- `CANCELLED` is a final status: a job cancelled before it ran never runs, and a running one
-- has its command stopped; its attempt is recorded `CANCELLED`.
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN
    ('SCHEDULED', 'DISPATCHED', 'RUNNING', 'RETRYING', 'SUCCESS', 'FAILED', 'CANCELLED'));
ALTER TABLE job_attempts DROP CONSTRAINT job_attempts_status_check;
ALTER TABLE job_attempts ADD CONSTRAINT job_attempts_status_check CHECK (status IN
    ('RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'LOST', 'CANCELLED'));

-- The kinds `http` and `kafka` keep their fields in `spec` (JSON); `shell` keeps its command
-- where it always has, and `noop` has none.
ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('shell', 'noop', 'http', 'kafka'));

ALTER TABLE jobs
    ADD COLUMN spec          jsonb,
    -- The job's own retry backoff (`{"base": ..., "max": ..., "jitter": ...}`), else the
    -- configured one.
    ADD COLUMN retry_backoff jsonb,
    -- The job this one re-runs.
    ADD COLUMN rerun_of      uuid,
    ADD COLUMN cancelled_at  timestamptz;

-- A cancel that the instance running the job must act on (stop its command): taken by that
-- instance's next heartbeat.
CREATE TABLE cancellations (
    job_id       uuid        PRIMARY KEY,
    runner       text        NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cancellations_runner_idx ON cancellations (runner);

-- Idempotent creates: a key names the job it created, and the request it came with.
CREATE TABLE idempotency_keys (
    key          text        PRIMARY KEY,
    request_hash text        NOT NULL,
    job_id       uuid        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
