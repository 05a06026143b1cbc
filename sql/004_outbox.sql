-- tollgate schema, version 4: the webhook outbox (SPEC 9).
--
-- An event is written in the transaction of the charge that raises it, so
-- a charge and its event exist together or not at all, and is delivered
-- later, after the client's response (or by tools/tollgate-deliver).
-- A delivery is claimed by moving next_attempt_at past the attempt's
-- timeout under a fresh claim token, in one UPDATE: two processes never
-- send the same attempt, and one that dies mid-send leaves the event to be
-- retried when the claim runs out.  Times are the database's clock
-- (UTC_TIMESTAMP), one clock for every web node.
CREATE TABLE IF NOT EXISTS webhook_outbox (
	id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
	event_id CHAR(36) NOT NULL,
	target VARCHAR(16) NOT NULL,
	event VARCHAR(32) NOT NULL,
	customer_id VARBINARY(255) NULL,
	body MEDIUMTEXT NOT NULL,
	status VARCHAR(16) NOT NULL DEFAULT 'pending',
	attempts INT NOT NULL DEFAULT 0,
	created_at DATETIME(6) NOT NULL,
	-- retry_for counts from here: the event's creation, or an operator's
	-- requeue of a dead event (tollgate-deliver --requeue-dead).
	retry_since DATETIME(6) NOT NULL,
	next_attempt_at DATETIME(6) NOT NULL,
	claim CHAR(36) NULL,
	last_error VARCHAR(255) NULL,
	delivered_at DATETIME(6) NULL,
	PRIMARY KEY (id),
	UNIQUE KEY webhook_outbox_event (event_id, target),
	KEY webhook_outbox_due (status, next_attempt_at),
	KEY webhook_outbox_claim (claim),
	KEY webhook_outbox_delivered (status, delivered_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Which budget alerts a customer's period has raised: the first charge to
-- reach a threshold inserts the mark and writes the event; every other
-- (in any process) finds the key taken.  alert names the alert and the
-- limit it was measured against ("threshold_85:4"), so a changed limit
-- is alerted on afresh; period is the period's end as the database
-- prints customers.spend_reset_at, '' for a budget without periods.
CREATE TABLE IF NOT EXISTS alert_marks (
	user_id VARBINARY(255) NOT NULL,
	alert VARCHAR(64) NOT NULL,
	period VARCHAR(32) NOT NULL,
	created_at DATETIME(6) NOT NULL,
	PRIMARY KEY (user_id, alert, period),
	KEY alert_marks_period (period)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
