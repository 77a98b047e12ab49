-- The columns PostgreSQL's migrations V8 and V9 added, so that both stores keep a job in the
-- same columns by the same rules (see migrations/postgres):
--
-- - a claimed run has a run lease of its own (`run_lease_until`); the row keeps its status
--   (`DISPATCHED`) until the attempt's first report, and shows `RUNNING` meanwhile;
-- - a job that ends with its first attempt, before that attempt reported `RUNNING`, keeps the
--   attempt in its own row (`last_stderr`, `last_outcome` beside the others) rather than in
--   `job_attempts`; `job_history` is every attempt, whichever of the two holds it.
ALTER TABLE jobs ADD COLUMN run_lease_until INTEGER;
ALTER TABLE jobs ADD COLUMN last_stderr TEXT;
ALTER TABLE jobs ADD COLUMN last_outcome TEXT;

-- Rows claimed by the previous layout (their status says RUNNING): their run lease is their
-- lease.
UPDATE jobs SET run_lease_until = lease_until WHERE status = 'RUNNING';

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
