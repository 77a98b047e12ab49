-- An instance is known alive by a lock as well as by its heartbeat: each instance holds a
-- session advisory lock on `lock_key` on its heartbeat connection, and PostgreSQL releases it
-- the moment the connection ends, when the process dies. Recovery reads `pg_locks` to tell a
-- dead instance within a heartbeat or two, where the heartbeat alone took a grace.
--
-- `dispatch_partitions` are the partitions of the jobs topic the instance's dispatcher holds:
-- a dispatch that no live instance's dispatcher holds is found, and taken back, when the
-- instance that held its partition dies, without waiting for Kafka to move the partition.
ALTER TABLE instances
    ADD COLUMN lock_key bigint,
    ADD COLUMN dispatch_partitions integer[] NOT NULL DEFAULT '{}';
