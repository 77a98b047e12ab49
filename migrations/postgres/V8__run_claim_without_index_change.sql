-- A claimed run's lease, apart from `lease_until`. Claiming a run used to set `status` to
-- 'RUNNING' and move `lease_until`, two indexed columns, so that each claim wrote a new entry
-- into every index of `jobs` (its largest cost per job). Now the claim writes only columns no
-- index reads (`attempts`, `runner`, `run_lease_until`), so that PostgreSQL can update the row
-- in its page (a HOT update) and leave the indexes alone.
--
-- A job whose current attempt's run is claimed has `run_lease_until` set: the API shows it
-- `RUNNING` whatever `status` holds (`DISPATCHED` or `RETRYING` until a report moves it), and
-- its lease is `run_lease_until`. It is cleared when a report ends the attempt and when the
-- job is dispatched again. `lease_until` is never later than it, so the recovery scan still
-- finds every expired job through `jobs_in_flight_lease_idx`.
ALTER TABLE jobs ADD COLUMN run_lease_until timestamptz;

-- Rows claimed by the previous layout: their run lease is their lease.
UPDATE jobs SET run_lease_until = lease_until WHERE status = 'RUNNING';

-- The status the API shows (see above).
CREATE FUNCTION kairos_shown_status(status text, run_lease_until timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN run_lease_until IS NOT NULL AND status NOT IN ('SUCCESS', 'FAILED')
        THEN 'RUNNING' ELSE status END
$$;
