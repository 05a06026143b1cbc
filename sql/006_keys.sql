-- tollgate schema, version 6: virtual keys (SPEC 13).
--
-- Applications call with keys of their own instead of the master key.  A
-- key is an account like a customer: spend (current period), reserved
-- (holds of its requests in flight) and a budget row with its limits,
-- private to the key.  Only the SHA-256 of a key is stored (token); the
-- key itself is shown once, when it is generated.
CREATE TABLE IF NOT EXISTS api_keys (
	token CHAR(64) NOT NULL,
	key_name VARCHAR(64) NOT NULL,
	key_alias VARBINARY(255) NULL,
	expires DATETIME(6) NULL,
	models TEXT NOT NULL,
	metadata TEXT NULL,
	blocked TINYINT(1) NOT NULL DEFAULT 0,
	budget_id VARBINARY(255) NULL,
	spend DECIMAL(20,10) NOT NULL DEFAULT 0,
	reserved DECIMAL(20,10) NOT NULL DEFAULT 0,
	spend_reset_at DATETIME(6) NULL,
	created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	created_by VARCHAR(255) NULL,
	updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	updated_by VARCHAR(255) NULL,
	PRIMARY KEY (token),
	UNIQUE KEY api_keys_alias (key_alias),
	KEY api_keys_created (created_at),
	KEY api_keys_budget_id (budget_id),
	CONSTRAINT api_keys_budget_fk FOREIGN KEY (budget_id)
		REFERENCES budgets (budget_id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A key's budget is its own: private_for_key names the key (token), and
-- /budget/list and /budget/info do not show it.
ALTER TABLE budgets
	ADD COLUMN private_for_key CHAR(64) NULL,
	ADD KEY budgets_private_for_key (private_for_key);

-- One hold for both accounts of a call: the customer's (user_id) and the
-- key's (key_token, NULL for the master key).  Whoever deletes the row
-- releases it from both, so no state exists where one is held without the
-- other.
ALTER TABLE reservations
	ADD COLUMN key_token CHAR(64) NULL;

-- Rate limits and budget alerts per account: kind 'customer' (user_id is
-- the customer's id) or 'key' (user_id is the key's token).  Customer ids
-- are any bytes, so the kind is part of every key: no id of one kind can
-- be taken for the other.
ALTER TABLE rate_windows
	ADD COLUMN kind VARCHAR(8) NOT NULL DEFAULT 'customer' FIRST,
	DROP PRIMARY KEY,
	ADD PRIMARY KEY (kind, user_id, window_start);
ALTER TABLE in_flight
	ADD COLUMN kind VARCHAR(8) NOT NULL DEFAULT 'customer' AFTER request_id,
	DROP PRIMARY KEY,
	ADD PRIMARY KEY (request_id, kind),
	DROP KEY in_flight_user_expires,
	ADD KEY in_flight_user_expires (kind, user_id, expires_at);
ALTER TABLE alert_marks
	ADD COLUMN kind VARCHAR(8) NOT NULL DEFAULT 'customer' FIRST,
	DROP PRIMARY KEY,
	ADD PRIMARY KEY (kind, user_id, alert, period);

-- /spend/logs?api_key= and a key's ledger.
CREATE INDEX spend_logs_api_key_start ON spend_logs (api_key, start_time);
