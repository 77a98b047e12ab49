-- PostgreSQL's migration V15: the token names of who created and cancelled.
ALTER TABLE jobs ADD COLUMN created_by TEXT;
ALTER TABLE jobs ADD COLUMN cancelled_by TEXT;
ALTER TABLE schedules ADD COLUMN created_by TEXT;
