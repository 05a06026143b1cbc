-- tollgate schema, version 1 (SPEC 3).
--
-- MySQL 8 / MariaDB 10.6+, InnoDB, utf8mb4.  Ids are VARBINARY(255): stored
-- and compared byte-exactly (case-sensitive, trailing spaces significant,
-- which utf8mb4_bin's PAD SPACE comparison is not); tollgate admits only
-- valid UTF-8 of 1..255 bytes into them.
-- Money is DECIMAL(20,10): exact, in units of 1e-10 USD like lib/money.h.
-- Times are DATETIME(6) in UTC (every connection sets time_zone '+00:00').
-- Statements end with ";" at the end of a line (tools/tollgate-migrate
-- splits on that); lines starting with "--" are comments.

-- Budgets ("pricing tiers"), shared by customers.  private_for names the
-- customer a budget was made for by /customer/new with budget fields.
CREATE TABLE IF NOT EXISTS budgets (
	budget_id VARBINARY(255) NOT NULL,
	max_budget DECIMAL(20,10) NULL,
	soft_budget DECIMAL(20,10) NULL,
	max_parallel_requests BIGINT NULL,
	tpm_limit BIGINT NULL,
	rpm_limit BIGINT NULL,
	model_max_budget TEXT NULL,
	budget_duration VARCHAR(32) NULL,
	budget_reset_at DATETIME(6) NULL,
	private_for VARBINARY(255) NULL,
	created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	created_by VARCHAR(255) NULL,
	updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	updated_by VARCHAR(255) NULL,
	PRIMARY KEY (budget_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Customers (end users).  spend is the current period's; reserved is the
-- sum of the holds of requests in flight (rows of reservations).
CREATE TABLE IF NOT EXISTS customers (
	user_id VARBINARY(255) NOT NULL,
	alias VARCHAR(255) NULL,
	blocked TINYINT(1) NOT NULL DEFAULT 0,
	spend DECIMAL(20,10) NOT NULL DEFAULT 0,
	reserved DECIMAL(20,10) NOT NULL DEFAULT 0,
	budget_id VARBINARY(255) NULL,
	allowed_model_region VARCHAR(16) NULL,
	default_model VARCHAR(255) NULL,
	spend_reset_at DATETIME(6) NULL,
	created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (user_id),
	KEY customers_budget_id (budget_id),
	CONSTRAINT customers_budget_fk FOREIGN KEY (budget_id)
		REFERENCES budgets (budget_id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The ledger: one row per LLM request, append-only.  No foreign key to
-- customers: deleting a customer keeps its rows.
CREATE TABLE IF NOT EXISTS spend_logs (
	request_id VARCHAR(255) NOT NULL,
	end_user VARBINARY(255) NOT NULL DEFAULT '',
	model VARCHAR(255) NULL,
	model_id VARCHAR(255) NULL,
	api_key VARCHAR(64) NULL,
	call_type VARCHAR(64) NULL,
	status VARCHAR(16) NOT NULL,
	spend DECIMAL(20,10) NOT NULL DEFAULT 0,
	prompt_tokens BIGINT NOT NULL DEFAULT 0,
	completion_tokens BIGINT NOT NULL DEFAULT 0,
	total_tokens BIGINT NOT NULL DEFAULT 0,
	start_time DATETIME(6) NOT NULL,
	end_time DATETIME(6) NOT NULL,
	request_duration_ms BIGINT NOT NULL DEFAULT 0,
	api_base VARCHAR(2048) NULL,
	metadata TEXT NULL,
	PRIMARY KEY (request_id),
	KEY spend_logs_end_user_start (end_user, start_time),
	KEY spend_logs_start (start_time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Budget holds of requests in flight (SPEC 4.3).  A row whose expires_at
-- passed belongs to a process that died; it is reclaimed.
CREATE TABLE IF NOT EXISTS reservations (
	request_id VARCHAR(255) NOT NULL,
	user_id VARBINARY(255) NOT NULL,
	amount DECIMAL(20,10) NOT NULL DEFAULT 0,
	expires_at DATETIME(6) NOT NULL,
	created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (request_id),
	KEY reservations_expires (expires_at),
	KEY reservations_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Applied migrations (tools/tollgate-migrate creates it before running
-- this file; repeated here so the schema is complete on its own).
CREATE TABLE IF NOT EXISTS schema_version (
	version INT NOT NULL,
	name VARCHAR(255) NOT NULL,
	applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
