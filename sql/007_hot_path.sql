-- tollgate schema, version 7: the chat call's two transactions as stored
-- procedures, so that each is one round trip (DESIGN "The ledger", issue 11).
--
-- A database round trip costs the database more CPU than the statement it
-- carries, and the database is the bottleneck.  Admission (customer upsert,
-- hold row, conditional reserve of the customer and the virtual key) and
-- settlement (ledger row, hold release, charge) were each a transaction of
-- BEGIN, three or four statements and COMMIT; each is now one CALL that
-- makes the same transaction itself.  The procedures do only the common
-- case; whatever else a call needs (a blocked customer, a region, rate
-- limits, a due period reset, post enforcement, alerts, a charge above the
-- hold, a ledger row already there) they leave to the statements in C,
-- which they tell so (outcome 'slow', 'duplicate').
--
-- Both procedures roll back what they began before they fail (the EXIT
-- HANDLER), so that the caller can retry the whole CALL on a deadlock (also
-- how Galera reports a certification conflict at COMMIT), a lock wait
-- timeout or a lost connection; both find out by themselves that an
-- earlier attempt whose answer was lost went through (the request id's
-- row exists).
--
-- Written for MySQL 8 and MariaDB 10.6+ alike: DROP + CREATE (no CREATE OR
-- REPLACE), no MariaDB-only syntax.  Money is DECIMAL(20,10) throughout;
-- parameters arrive as exact decimal strings.

DROP PROCEDURE IF EXISTS tg_admit;

DELIMITER //
-- Admission of a chat call whose model is given, in reserve mode.  For the
-- customer p_user_id (NULL: none; created with the default tier
-- p_default_budget when new) and the virtual key p_key_token (NULL: none):
-- the hold row and the reserve of p_amount on each, each only within its
-- max_budget.  One row comes back:
--   outcome: 'held' | 'already' (an earlier attempt took it) |
--            'refused' (the customer's budget) | 'refused_key' |
--            'slow' (nothing held: the customer is blocked, limited to a
--            region, rate-limited or due a period reset, or it or the key
--            was deleted while the hold was being taken; the caller takes
--            the long way)
--   the key's spend and max_budget (after a refusal of the key, else
--   NULL), then the customer's spend and its effective budget's budget_id,
--   max_budget and budget_duration (what the caller's refusal and
--   settlement need; few columns, as each costs the caller the parsing of
--   its metadata), NULL without a customer.
-- p_now is the caller's clock, by which it decides resets (lib/account.c).
CREATE PROCEDURE tg_admit(
	IN p_request_id VARCHAR(255),
	IN p_user_id VARBINARY(255),
	IN p_default_budget VARBINARY(255),
	IN p_key_token CHAR(64),
	IN p_amount DECIMAL(20,10),
	IN p_hold_seconds BIGINT,
	IN p_model VARCHAR(255),
	IN p_api_key VARCHAR(64),
	IN p_start_time DATETIME(6),
	IN p_now DATETIME)
BEGIN
	DECLARE v_found INT DEFAULT 0;
	DECLARE v_slow INT DEFAULT 1;
	DECLARE v_dup INT DEFAULT 0;
	DECLARE v_outcome VARCHAR(16) DEFAULT 'held';
	DECLARE v_spend DECIMAL(20,10) DEFAULT NULL;
	DECLARE v_budget_id VARBINARY(255) DEFAULT NULL;
	DECLARE v_max DECIMAL(20,10) DEFAULT NULL;
	DECLARE v_duration VARCHAR(32) DEFAULT NULL;
	DECLARE v_key_spend DECIMAL(20,10) DEFAULT NULL;
	DECLARE v_key_max DECIMAL(20,10) DEFAULT NULL;
	DECLARE CONTINUE HANDLER FOR 1062 SET v_dup = 1;
	-- A SELECT ... INTO that finds no row leaves the variables as they
	-- were (v_found 0, v_slow 1).
	DECLARE CONTINUE HANDLER FOR NOT FOUND BEGIN END;
	DECLARE EXIT HANDLER FOR SQLEXCEPTION
	BEGIN
		ROLLBACK;
		RESIGNAL;
	END;

	-- Each statement here costs the database more than its work: the
	-- customer is read once (twice when new), with its budget.
	IF p_user_id IS NOT NULL THEN
		SELECT 1, c.blocked <> 0 OR c.allowed_model_region IS NOT NULL
			OR b.rpm_limit IS NOT NULL OR b.tpm_limit IS NOT NULL
			OR b.max_parallel_requests IS NOT NULL
			OR (b.budget_duration IS NOT NULL AND
			    (c.spend_reset_at IS NULL OR c.spend_reset_at <= p_now
			     OR b.budget_reset_at IS NULL
			     OR b.budget_reset_at <= p_now)),
			c.spend, b.budget_id, b.max_budget, b.budget_duration
		INTO v_found, v_slow, v_spend, v_budget_id, v_max, v_duration
		FROM customers c LEFT JOIN budgets b
			ON b.budget_id = COALESCE(c.budget_id, p_default_budget)
		WHERE c.user_id = p_user_id;
		IF v_found = 0 THEN
			-- The upsert in a statement of its own (autocommit),
			-- as tg_customer_upsert() does: the tier is attached
			-- in the same statement, and a refusal below does not
			-- undo the customer.
			INSERT IGNORE INTO customers (user_id, budget_id,
				created_at, updated_at)
			VALUES (p_user_id, (SELECT budget_id FROM budgets
				WHERE budget_id = p_default_budget),
				UTC_TIMESTAMP(6), UTC_TIMESTAMP(6));
			-- A request that created the customer in between
			-- makes this a duplicate-key warning, which the 1062
			-- handler also catches: it is not the hold's.
			SET v_dup = 0;
			SELECT 1, c.blocked <> 0
				OR c.allowed_model_region IS NOT NULL
				OR b.rpm_limit IS NOT NULL
				OR b.tpm_limit IS NOT NULL
				OR b.max_parallel_requests IS NOT NULL
				OR (b.budget_duration IS NOT NULL AND
				    (c.spend_reset_at IS NULL
				     OR c.spend_reset_at <= p_now
				     OR b.budget_reset_at IS NULL
				     OR b.budget_reset_at <= p_now)),
				c.spend, b.budget_id, b.max_budget,
				b.budget_duration
			INTO v_found, v_slow, v_spend, v_budget_id, v_max,
				v_duration
			FROM customers c LEFT JOIN budgets b
				ON b.budget_id = COALESCE(c.budget_id,
				                          p_default_budget)
			WHERE c.user_id = p_user_id;
		END IF;
		IF v_slow <> 0 THEN
			SET v_outcome = 'slow';
		END IF;
	END IF;

	IF v_outcome = 'held' THEN
		START TRANSACTION;
		INSERT INTO reservations (request_id, user_id, amount,
			expires_at, created_at, model, api_key, start_time,
			key_token)
		VALUES (p_request_id, COALESCE(p_user_id, ''), p_amount,
			UTC_TIMESTAMP(6) + INTERVAL p_hold_seconds SECOND,
			UTC_TIMESTAMP(6), p_model, p_api_key, p_start_time,
			p_key_token);
		IF v_dup <> 0 THEN
			SET v_outcome = 'already';
		END IF;
		-- The customer first, then the key: the order every
		-- transaction locks them in.
		IF v_outcome = 'held' AND p_user_id IS NOT NULL THEN
			UPDATE customers a LEFT JOIN budgets b
				ON b.budget_id = COALESCE(a.budget_id,
				                          p_default_budget)
			SET a.reserved = a.reserved + p_amount
			WHERE a.user_id = p_user_id AND (b.max_budget IS NULL
				OR a.spend + a.reserved + p_amount <=
				   b.max_budget);
			IF ROW_COUNT() = 0 THEN
				SET v_found = 0;
				SELECT 1 INTO v_found FROM customers
				WHERE user_id = p_user_id;
				-- Gone (deleted meanwhile): the long way makes
				-- it a new customer.
				IF v_found > 0 THEN
					SET v_outcome = 'refused';
				ELSE
					SET v_outcome = 'slow';
				END IF;
			END IF;
		END IF;
		IF v_outcome = 'held' AND p_key_token IS NOT NULL THEN
			UPDATE api_keys a LEFT JOIN budgets b
				ON b.budget_id = a.budget_id
			SET a.reserved = a.reserved + p_amount
			WHERE a.token = p_key_token AND (b.max_budget IS NULL
				OR a.spend + a.reserved + p_amount <=
				   b.max_budget);
			IF ROW_COUNT() = 0 THEN
				SET v_found = 0;
				SELECT 1 INTO v_found FROM api_keys
				WHERE token = p_key_token;
				IF v_found > 0 THEN
					SET v_outcome = 'refused_key';
				ELSE
					SET v_outcome = 'slow';
				END IF;
			END IF;
		END IF;
		IF v_outcome = 'held' OR v_outcome = 'already' THEN
			COMMIT;
		ELSE
			ROLLBACK;
		END IF;
	END IF;

	-- A refusal's message says the spend as it is now.
	IF v_outcome = 'refused' THEN
		SELECT c.spend, b.max_budget INTO v_spend, v_max
		FROM customers c LEFT JOIN budgets b
			ON b.budget_id = COALESCE(c.budget_id, p_default_budget)
		WHERE c.user_id = p_user_id;
	END IF;
	IF v_outcome = 'refused_key' THEN
		SELECT k.spend, kb.max_budget INTO v_key_spend, v_key_max
		FROM api_keys k LEFT JOIN budgets kb
			ON kb.budget_id = k.budget_id
		WHERE k.token = p_key_token;
	END IF;
	SELECT v_outcome, v_key_spend, v_key_max, v_spend, v_budget_id,
		v_max, v_duration;
END //
DELIMITER ;

DROP PROCEDURE IF EXISTS tg_settle;

DELIMITER //
-- Settlement of a call whose charge is within its hold, without alerts:
-- the ledger row, the release of the hold p_hold_id (NULL: none) if it is
-- still there (whoever deletes it gives its amount back), and the charge
-- of the customer p_user_id and the key p_key_token (each NULL: none),
-- each applying a due reset first (p_*_next: the end of the period that
-- would begin now, NULL without periods; p_now the caller's clock), as
-- lib/ledger.c's CHARGE_SQL.  One row comes back: 'settled', or
-- 'duplicate' when the request's row exists already (nothing done: a
-- commit whose answer was lost, or an unsettled row to replace; the
-- caller takes the long way).
CREATE PROCEDURE tg_settle(
	IN p_request_id VARCHAR(255),
	IN p_end_user VARBINARY(255),
	IN p_model VARCHAR(255),
	IN p_model_id VARCHAR(255),
	IN p_api_key VARCHAR(64),
	IN p_call_type VARCHAR(64),
	IN p_status VARCHAR(16),
	IN p_spend DECIMAL(20,10),
	IN p_prompt_tokens BIGINT,
	IN p_completion_tokens BIGINT,
	IN p_total_tokens BIGINT,
	IN p_start_time DATETIME(6),
	IN p_end_time DATETIME(6),
	IN p_duration_ms BIGINT,
	IN p_api_base VARCHAR(2048),
	IN p_metadata TEXT,
	IN p_hold_id VARCHAR(255),
	IN p_hold_amount DECIMAL(20,10),
	IN p_user_id VARBINARY(255),
	IN p_user_next DATETIME,
	IN p_key_token CHAR(64),
	IN p_key_next DATETIME,
	IN p_key_release INT,
	IN p_now DATETIME)
BEGIN
	DECLARE v_dup INT DEFAULT 0;
	DECLARE v_released DECIMAL(20,10) DEFAULT 0;
	DECLARE CONTINUE HANDLER FOR 1062 SET v_dup = 1;
	DECLARE EXIT HANDLER FOR SQLEXCEPTION
	BEGIN
		ROLLBACK;
		RESIGNAL;
	END;

	START TRANSACTION;
	INSERT INTO spend_logs (request_id, end_user, model, model_id,
		api_key, call_type, status, spend, prompt_tokens,
		completion_tokens, total_tokens, start_time, end_time,
		request_duration_ms, api_base, metadata)
	VALUES (p_request_id, p_end_user, p_model, p_model_id, p_api_key,
		p_call_type, p_status, p_spend, p_prompt_tokens,
		p_completion_tokens, p_total_tokens, p_start_time, p_end_time,
		p_duration_ms, p_api_base, p_metadata);
	IF v_dup <> 0 THEN
		ROLLBACK;
		SELECT 'duplicate';
	ELSE
		IF p_hold_id IS NOT NULL THEN
			DELETE FROM reservations WHERE request_id = p_hold_id;
			IF ROW_COUNT() > 0 THEN
				SET v_released = p_hold_amount;
			END IF;
		END IF;
		-- spend is assigned before spend_reset_at, so the reset test
		-- sees the old value.
		IF p_user_id IS NOT NULL THEN
			UPDATE customers SET
				spend = IF(p_user_next IS NOT NULL AND
				           spend_reset_at <= p_now, 0, spend)
				        + p_spend,
				spend_reset_at = IF(p_user_next IS NOT NULL AND
					(spend_reset_at IS NULL OR
					 spend_reset_at <= p_now), p_user_next,
					spend_reset_at),
				reserved = GREATEST(reserved - v_released, 0)
			WHERE user_id = p_user_id;
		END IF;
		IF p_key_token IS NOT NULL THEN
			UPDATE api_keys SET
				spend = IF(p_key_next IS NOT NULL AND
				           spend_reset_at <= p_now, 0, spend)
				        + p_spend,
				spend_reset_at = IF(p_key_next IS NOT NULL AND
					(spend_reset_at IS NULL OR
					 spend_reset_at <= p_now), p_key_next,
					spend_reset_at),
				reserved = GREATEST(reserved -
					IF(p_key_release <> 0, v_released, 0),
					0)
			WHERE token = p_key_token;
		END IF;
		COMMIT;
		SELECT 'settled';
	END IF;
END //
DELIMITER ;
