-- tollgate schema, version 10: per-model budgets.
--
-- A budget's model_max_budget ({"<model>": {"budget_limit": 0.5,
-- "time_period": "1d"}}, LiteLLM's shape), stored since version 1, is now
-- enforced as hard as max_budget: each account (a customer, a key) whose
-- budget caps the call's model has a model_spend row for it, with its own
-- spend, reserved and period, reserved in the same admission as the
-- account and charged in the same settlement.  budget_limit and
-- time_period are the cap the row was last admitted under.
CREATE TABLE IF NOT EXISTS model_spend (
	kind VARCHAR(8) NOT NULL,
	account_id VARBINARY(255) NOT NULL,
	model VARCHAR(255) NOT NULL,
	spend DECIMAL(20,10) NOT NULL DEFAULT 0,
	reserved DECIMAL(20,10) NOT NULL DEFAULT 0,
	budget_limit DECIMAL(20,10) NULL,
	time_period VARCHAR(32) NULL,
	spend_reset_at DATETIME NULL,
	PRIMARY KEY (kind, account_id, model)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Which of a hold's accounts reserved it on their model_spend row too
-- (1: the customer, 2: the key), so that whoever deletes the hold (the
-- settlement, the reclaim) releases it there as well.  0 for every hold
-- of an account without per-model budgets, as before.
ALTER TABLE reservations
	ADD COLUMN model_accounts TINYINT NOT NULL DEFAULT 0;

-- tg_admit again, the same but for one more reason to take the long
-- way: a customer whose budget has a model_max_budget (the statements
-- reserve the model's row; lib/ledger.c).
DROP PROCEDURE IF EXISTS tg_admit;

DELIMITER //
-- Admission of a call whose worst case is known, in reserve mode (the
-- ledger's common admission, lib/ledger.c).  For the
-- customer p_user_id (NULL: none; created with the default tier
-- p_default_budget when new) and the virtual key p_key_token (NULL: none):
-- the hold row and the reserve of p_amount on each, each only within its
-- max_budget.  One row comes back:
--   outcome: 'held' | 'already' (an earlier attempt took it) |
--            'refused' (the customer's budget) | 'refused_key' |
--            'slow' (nothing held: the customer is blocked, limited to a
--            region, rate-limited, has per-model budgets (model_spend,
--            above) or is due a period reset, or it or the key
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
	DECLARE v_fits INT DEFAULT 0;
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
			OR b.model_max_budget IS NOT NULL
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
				OR b.model_max_budget IS NOT NULL
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
			-- ROW_COUNT() counts the rows changed (those matched
			-- only for a client that connected with
			-- CLIENT_FOUND_ROWS).  A hold above 0 changes the row
			-- it matches, so 0 is a refusal; a hold of 0 changes
			-- nothing, so the row is read to tell whether it fits
			-- (what a concurrent settlement does to it meanwhile
			-- cannot make a hold of 0 wrong).
			IF ROW_COUNT() = 0 THEN
				SET v_found = 0, v_fits = 0;
				SELECT 1, b.max_budget IS NULL OR
					a.spend + a.reserved <= b.max_budget
				INTO v_found, v_fits
				FROM customers a LEFT JOIN budgets b
					ON b.budget_id = COALESCE(a.budget_id,
					                          p_default_budget)
				WHERE a.user_id = p_user_id;
				-- Gone (deleted meanwhile): the long way makes
				-- it a new customer.
				IF v_found = 0 THEN
					SET v_outcome = 'slow';
				ELSEIF v_fits = 0 OR p_amount > 0 THEN
					SET v_outcome = 'refused';
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
				SET v_found = 0, v_fits = 0;
				SELECT 1, b.max_budget IS NULL OR
					a.spend + a.reserved <= b.max_budget
				INTO v_found, v_fits
				FROM api_keys a LEFT JOIN budgets b
					ON b.budget_id = a.budget_id
				WHERE a.token = p_key_token;
				IF v_found = 0 THEN
					SET v_outcome = 'slow';
				ELSEIF v_fits = 0 OR p_amount > 0 THEN
					SET v_outcome = 'refused_key';
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
