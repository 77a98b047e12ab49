-- The planner no longer estimates from statistics of `status`: its distribution does not stay
-- what the last ANALYZE saw. A burst takes the jobs in flight from none to hundreds of
-- thousands and back within minutes. Statistics taken on a table of finished jobs told the
-- planner that a batch of jobs in flight would match a single row, and it planned the batch
-- statements of the run ledger and the result writer as joins that read the whole batch
-- again for each job (docs/performance.md, item 48). Without statistics it uses its default
-- selectivity (any one status is rare), which suits every query on `status`: each reads it
-- through an index that names it.
ALTER TABLE jobs ALTER COLUMN status SET STATISTICS 0;

-- With a target of 0, the statistics ANALYZE took before stay. Changing the column's type (to
-- the same type: no row is rewritten) drops them. PostgreSQL then builds again the two partial
-- indexes whose predicates name the column and checks its constraint again, under an
-- exclusive lock: 0.6 s for a table of 1,000,000 jobs. The view that reads the column is made
-- again around the change, as migration V9 made it.
DROP VIEW job_history;
ALTER TABLE jobs ALTER COLUMN status TYPE text;
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
