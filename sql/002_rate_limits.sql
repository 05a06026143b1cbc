-- tollgate schema, version 2: rate limits per customer (SPEC 5).
--
-- The state is in the database so that every process on every machine
-- sees the same counts.  Times are UTC (every connection sets time_zone
-- '+00:00'); the windows are keyed by the server's UTC minute, so the
-- machines' clocks do not matter.  New tables only: re-runnable on MySQL 8
-- and MariaDB 10.6+ alike.

-- Requests admitted and tokens settled per customer and UTC minute
-- (rpm_limit, tpm_limit).  Rows of past minutes are deleted as the
-- customer's next minute begins.
CREATE TABLE IF NOT EXISTS rate_windows (
	user_id VARBINARY(255) NOT NULL,
	window_start DATETIME NOT NULL,
	requests INT UNSIGNED NOT NULL DEFAULT 0,
	tokens BIGINT UNSIGNED NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, window_start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Requests in flight of customers with a max_parallel_requests.  A row
-- whose expires_at passed belongs to a process that died: it no longer
-- counts, so a crash cannot block a customer forever.
CREATE TABLE IF NOT EXISTS in_flight (
	request_id VARCHAR(255) NOT NULL,
	user_id VARBINARY(255) NOT NULL,
	expires_at DATETIME(6) NOT NULL,
	created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (request_id),
	KEY in_flight_user_expires (user_id, expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
