-- When a trigger was last enabled: a schedule's tick before it is never
-- claimed, so ticks that passed while the trigger was disabled stay unfired
-- even on a server that restarted meanwhile. Existing triggers: unknown
-- (NULL), as before.
ALTER TABLE triggers ADD COLUMN enabled_at BIGINT;
