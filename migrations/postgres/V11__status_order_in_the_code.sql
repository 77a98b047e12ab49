-- The order of the statuses lives in the code alone (`JobStatus::rank`): the statements that
-- compare statuses carry it, in PostgreSQL and in SQLite alike, so it is no longer restated
-- here.
DROP FUNCTION kairos_status_rank(text);
