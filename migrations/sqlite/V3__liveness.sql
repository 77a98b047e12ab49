-- The columns PostgreSQL's migration V12 added to `instances`. SQLite has no advisory locks
-- and one process at a time: `lock_key` stays empty, and the partitions (a JSON array) name
-- the in-process queue's one partition.
ALTER TABLE instances ADD COLUMN lock_key INTEGER;
ALTER TABLE instances ADD COLUMN dispatch_partitions TEXT NOT NULL DEFAULT '[]';
