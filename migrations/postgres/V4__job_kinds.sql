-- What a job does: "shell" runs `command` with /bin/sh -c; "noop" does nothing and succeeds
-- at once (it measures the scheduler itself, without process spawning).
ALTER TABLE jobs ADD COLUMN kind text NOT NULL DEFAULT 'shell' CHECK (kind IN ('shell', 'noop'));
ALTER TABLE jobs DROP CONSTRAINT jobs_command_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_command_check CHECK (kind <> 'shell' OR command <> '');
