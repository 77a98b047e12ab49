-- Who did it: the name of the API token that created a job or a schedule, and that cancelled a
-- job (`anonymous` when no token is configured; NULL for what Kairos did by itself or before
-- this migration).
ALTER TABLE jobs ADD COLUMN created_by text, ADD COLUMN cancelled_by text;
ALTER TABLE schedules ADD COLUMN created_by text;
