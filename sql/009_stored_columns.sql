-- tollgate schema, version 9: the ledger's generated columns stored.
--
-- spend_logs.start_day (sql/005) and spend_logs.response_id (sql/008) were
-- VIRTUAL columns, each leading an index.  InnoDB computes an indexed
-- virtual column whenever it undoes or purges a row of that index, and to
-- do so it opens the table from its .frm in a background thread.  A Galera
-- node killed with ledger transactions in flight is started again after
-- `mariadbd --wsrep-recover` (Debian's galera_recovery) has read its
-- position; that run rolls the transactions back, cannot open the table
-- in its half-started server ("Incorrect information in file:
-- './tollgate/spend_logs.frm'") and never ends, so the node never comes
-- back by itself (tests/e2e/galera.py saw it in the sanitizer build).
-- Stored, the values are in the row itself: undo and purge read them and
-- open nothing.
--
-- The cost: this statement rewrites the table once (21 s for a million
-- rows on a 2-core machine with another build running), and
-- writes to the ledger wait for it meanwhile (on Galera, as a DDL in total
-- order, the whole cluster's do): run it when traffic is low.  Each row
-- grows by the two values (a DATE and the response id).
ALTER TABLE spend_logs
	DROP INDEX spend_logs_activity,
	DROP INDEX spend_logs_response_id,
	DROP COLUMN start_day,
	DROP COLUMN response_id,
	ADD COLUMN start_day DATE AS (DATE(start_time)) STORED,
	ADD COLUMN response_id VARCHAR(255)
		AS (JSON_VALUE(metadata, '$.response_id')) STORED,
	ADD INDEX spend_logs_activity (start_day, end_user, model, call_type,
		start_time, status, spend, prompt_tokens, completion_tokens,
		total_tokens),
	ADD KEY spend_logs_response_id (response_id);
