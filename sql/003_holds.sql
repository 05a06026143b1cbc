-- tollgate schema, version 3: holds that can be charged (SPEC 4.3, 4.4).
--
-- Every request that may reach an upstream holds its worst-case cost in a
-- reservations row until it is settled.  A hold whose process died is
-- reclaimed by charging it (a spend_logs row with status 'unsettled'), so
-- it needs what that row records: the client's model name and the key.
-- A later settlement of the same request (replayed from a spool) replaces
-- the unsettled row's charge with the real one.
ALTER TABLE reservations
	ADD COLUMN model VARCHAR(255) NULL,
	ADD COLUMN api_key VARCHAR(64) NULL,
	ADD COLUMN start_time DATETIME(6) NULL;

-- Unsettled rows are what an operator reviews (and may refund).
CREATE INDEX spend_logs_status ON spend_logs (status, start_time);
