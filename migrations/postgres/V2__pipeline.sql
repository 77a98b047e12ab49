-- The scheduling pipeline: claims, dispatch epochs, attempts and their history.

ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('SCHEDULED', 'DISPATCHED', 'RUNNING', 'RETRYING', 'SUCCESS', 'FAILED'));

ALTER TABLE jobs
    -- Attempts started so far; the next attempt's number is attempts + 1.
    ADD COLUMN attempts    integer     NOT NULL DEFAULT 0,
    -- Increased by every claim. A report is applied only if it carries the current epoch.
    ADD COLUMN epoch       bigint      NOT NULL DEFAULT 0,
    -- Who claimed the job last, and when.
    ADD COLUMN claimed_by  text,
    ADD COLUMN claimed_at  timestamptz,
    ADD COLUMN started_at  timestamptz,
    ADD COLUMN finished_at timestamptz,
    ADD COLUMN exit_code   integer,
    ADD COLUMN last_output text,
    ADD COLUMN last_error  text;

-- Listing jobs newest first (ids are UUIDv7, so they sort by creation time), with or
-- without a status filter.
CREATE INDEX jobs_status_id_idx ON jobs (status, id DESC);

-- How far along an attempt a status is. A report moves a job only forward: to a later
-- attempt, or to a later status within the same attempt.
CREATE FUNCTION kairos_status_rank(status text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE status
        WHEN 'SCHEDULED' THEN 0
        WHEN 'DISPATCHED' THEN 0
        WHEN 'RUNNING' THEN 1
        WHEN 'RETRYING' THEN 2
        WHEN 'SUCCESS' THEN 3
        WHEN 'FAILED' THEN 3
    END
$$;

-- One row per attempt: the retry history.
CREATE TABLE job_attempts (
    job_id       uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt      integer     NOT NULL CHECK (attempt > 0),
    epoch        bigint      NOT NULL,
    status       text        NOT NULL CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT')),
    scheduled_at timestamptz NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    exit_code    integer,
    stdout       text,
    stderr       text,
    error        text,
    PRIMARY KEY (job_id, attempt)
);
