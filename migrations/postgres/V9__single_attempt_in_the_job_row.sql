-- A job that ends with its first attempt, before that attempt reported `RUNNING` (it ran for
-- less than `executor.running_report_after`), no longer gets a row in `job_attempts`: the
-- job's own row already holds that attempt's start, end, exit code, output and error, and
-- now its stderr and outcome too. Writing the row had cost about a sixth of PostgreSQL's
-- time per job in a burst of short jobs (docs/performance.md). Every other attempt (a
-- retried job's, a long one's, a lost one's) keeps its row.
--
-- `job_history` is every attempt, whichever of the two holds it.
ALTER TABLE jobs
    ADD COLUMN last_stderr  text,
    -- The last finished attempt's outcome: 'SUCCEEDED', 'FAILED' or 'TIMED_OUT'.
    ADD COLUMN last_outcome text;

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
