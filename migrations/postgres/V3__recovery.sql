-- Crash recovery: every job in flight carries a lease; a job whose lease runs out was lost
-- (its dispatch, its executor or its process) and is dispatched again.

ALTER TABLE jobs
    -- When the job must next show progress: its start (DISPATCHED), its result (RUNNING,
    -- by the attempt's timeout) or its next attempt (RETRYING). NULL when not in flight.
    ADD COLUMN lease_until   timestamptz,
    -- Attempts lost to a crash (not the command's failure); capped separately.
    ADD COLUMN lost_attempts integer NOT NULL DEFAULT 0,
    -- The instance whose executor runs the current attempt.
    ADD COLUMN runner        text;

-- The recovery scan reads only jobs in flight whose lease ran out.
CREATE INDEX jobs_in_flight_lease_idx ON jobs (lease_until)
    WHERE status IN ('DISPATCHED', 'RUNNING', 'RETRYING');

ALTER TABLE job_attempts DROP CONSTRAINT job_attempts_status_check;
ALTER TABLE job_attempts ADD CONSTRAINT job_attempts_status_check
    CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'LOST'));

-- Live Kairos processes. Each executor process beats every second or so; a RUNNING job whose
-- runner stopped beating for longer than the recovery grace was lost with its process, and is
-- recovered without waiting for its (possibly long) timeout.
CREATE TABLE instances (
    id           text        PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
