-- The instance holding a dispatched job (its executor waits for the job's time) or running
-- it. The recovery pass looks up jobs whose holder stopped beating through this index, which
-- holds only jobs in flight.
CREATE INDEX jobs_held_idx ON jobs (runner) WHERE runner IS NOT NULL;
