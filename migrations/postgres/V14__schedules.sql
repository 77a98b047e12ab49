-- Recurring schedules. Each fire makes an ordinary job, with `schedule_id` and
-- `scheduled_for` (the nominal fire time, before jitter); the unique index below lets at most
-- one job exist per fire, whatever process makes it and however often.
CREATE TABLE schedules (
    id                  uuid        PRIMARY KEY,
    name                text,
    -- Exactly one of `cron` and `every_ms`.
    cron                text,
    every_ms            bigint      CHECK (every_ms > 0),
    timezone            text        NOT NULL DEFAULT 'UTC',
    -- The job each fire makes: its kind and fields, max_retries, timeout_secs, metadata,
    -- retry_backoff and name, as a create takes them.
    job                 jsonb       NOT NULL,
    overlap             text        NOT NULL DEFAULT 'skip'
                        CHECK (overlap IN ('skip', 'buffer_one', 'allow_all', 'cancel_previous')),
    catchup_window_secs integer     NOT NULL DEFAULT 60 CHECK (catchup_window_secs >= 0),
    jitter_secs         integer     NOT NULL DEFAULT 0 CHECK (jitter_secs >= 0),
    start_at            timestamptz,
    end_at              timestamptz,
    paused              boolean     NOT NULL DEFAULT false,
    pause_note          text,
    keep_last           integer     NOT NULL DEFAULT 100 CHECK (keep_last >= 0),
    -- The next fire not made yet (NULL: none is left before `end_at`). Fires are made up to
    -- a little ahead of their time by any process's scanner, which moves this on in the same
    -- transaction as it stores their jobs.
    next_fire_at        timestamptz,
    missed_fires        bigint      NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((cron IS NULL) <> (every_ms IS NULL))
);
-- The fire pass's question: which schedules have a fire due before T.
CREATE INDEX schedules_next_fire_idx ON schedules (next_fire_at)
    WHERE NOT paused AND next_fire_at IS NOT NULL;

ALTER TABLE jobs
    ADD COLUMN schedule_id   uuid,
    ADD COLUMN scheduled_for timestamptz,
    -- The schedule's overlap rule when the fire was made, for its first attempt's claim.
    ADD COLUMN overlap       text;

-- One job per fire. (One-off jobs have no schedule and no entry.)
CREATE UNIQUE INDEX jobs_schedule_fire_idx ON jobs (schedule_id, scheduled_for)
    WHERE schedule_id IS NOT NULL;
-- A schedule's jobs, newest first (`GET /api/v1/jobs?schedule_id=`).
CREATE INDEX jobs_schedule_id_idx ON jobs (schedule_id, id) WHERE schedule_id IS NOT NULL;
-- A fire's claim asks whether an earlier fire's job of its schedule has not ended.
CREATE INDEX jobs_schedule_unfinished_idx ON jobs (schedule_id, scheduled_for)
    WHERE schedule_id IS NOT NULL
      AND status IN ('SCHEDULED', 'DISPATCHED', 'RUNNING', 'RETRYING');

-- `SKIPPED`: a fire whose previous fire's job had not ended when it came (overlap `skip`, or
-- `buffer_one` with one waiting already). Final.
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN
    ('SCHEDULED', 'DISPATCHED', 'RUNNING', 'RETRYING', 'SUCCESS', 'FAILED', 'CANCELLED',
     'SKIPPED'));

-- The status shown: every final status stays as it is.
CREATE OR REPLACE FUNCTION kairos_shown_status(status text, run_lease_until timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN run_lease_until IS NOT NULL
                 AND status NOT IN ('SUCCESS', 'FAILED', 'CANCELLED', 'SKIPPED')
        THEN 'RUNNING' ELSE status END
$$;
