-- tollgate schema, version 11: tags (SPEC 11).
--
-- A tag is an account a call names (metadata.tags, the x-litellm-tags
-- header), as LiteLLM's tags are: spend (the current period's), reserved
-- (the holds of its calls in flight) and a budget row with its limits.  A
-- call is admitted only if every tag it names that exists admits it, in
-- the same transaction as its customer and its key, and is charged to
-- each; a tag that does not exist is recorded on the call's row and
-- charged nothing (LiteLLM's behaviour).  budget_private: the budget was
-- made for the tag by /tag/new with budget fields, and goes with it.
CREATE TABLE IF NOT EXISTS tags (
	tag_name VARBINARY(255) NOT NULL,
	description TEXT NULL,
	models TEXT NULL,
	blocked TINYINT(1) NOT NULL DEFAULT 0,
	budget_id VARBINARY(255) NULL,
	budget_private TINYINT(1) NOT NULL DEFAULT 0,
	spend DECIMAL(20,10) NOT NULL DEFAULT 0,
	reserved DECIMAL(20,10) NOT NULL DEFAULT 0,
	spend_reset_at DATETIME(6) NULL,
	created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	created_by VARCHAR(255) NULL,
	updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	updated_by VARCHAR(255) NULL,
	PRIMARY KEY (tag_name),
	KEY tags_budget_id (budget_id),
	CONSTRAINT tags_budget_fk FOREIGN KEY (budget_id)
		REFERENCES budgets (budget_id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The tags a hold was taken from, as a JSON object of each tag's name
-- and what its hold is on: 1, admitted against its max_budget; 2, on its
-- model_spend row too (a model_max_budget cap).  NULL: none.  Whoever
-- deletes the hold (the settlement, the reclaim) releases and charges
-- each of them, as it does the customer and the key.
ALTER TABLE reservations
	ADD COLUMN tags TEXT NULL;

-- The tags each ledger row names (its metadata.tags, every one, those
-- that are no account too), for /spend/logs?tags=: one row per tag and
-- request, written with the ledger row, by tag then time.
CREATE TABLE IF NOT EXISTS spend_log_tags (
	tag VARBINARY(255) NOT NULL,
	request_id VARCHAR(255) NOT NULL,
	start_time DATETIME(6) NOT NULL,
	PRIMARY KEY (tag, request_id),
	KEY spend_log_tags_time (tag, start_time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The procedures again, for calls that name tags: tg_admit_v11 and
-- tg_settle_v11 are tg_admit (sql/010) and tg_settle (sql/007) with the
-- call's tags, which the programs of this version call for every call.
-- tg_admit and tg_settle stay as they were for programs older than this
-- schema (tollgate-migrate runs before the programs are replaced).
DROP PROCEDURE IF EXISTS tg_admit_v11;

DELIMITER //
-- tg_admit (sql/010), and the tags p_tags (a JSON array of the names the
-- call gives, sorted by their bytes; NULL: none): each that exists is an
-- account, held in the same transaction as the customer and the key (after
-- them, in that order), within its max_budget.  A tag that is blocked, is
-- rate-limited, caps a model, lists models without p_model or is due a
-- period reset makes the call 'slow'.  Besides tg_admit's outcomes:
-- 'refused_tag' (a tag's budget; its name, spend and max_budget come
-- back) and 'none' (no customer, no key and no tag that exists: nothing
-- to hold).  The row: tg_admit's seven columns, then the tags held
-- ({"<name>": 1 with a max_budget, else 0}; NULL: none), then a refused
-- tag's name, spend and max_budget.
CREATE PROCEDURE tg_admit_v11(
	IN p_request_id VARCHAR(255),
	IN p_user_id VARBINARY(255),
	IN p_default_budget VARBINARY(255),
	IN p_key_token CHAR(64),
	IN p_amount DECIMAL(20,10),
	IN p_hold_seconds BIGINT,
	IN p_model VARCHAR(255),
	IN p_api_key VARCHAR(64),
	IN p_start_time DATETIME(6),
	IN p_now DATETIME,
	IN p_tags TEXT)
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
	DECLARE v_i INT DEFAULT 0;
	DECLARE v_n INT DEFAULT 0;
	DECLARE v_name VARCHAR(255) CHARACTER SET utf8mb4 DEFAULT NULL;
	DECLARE v_budgeted INT DEFAULT 0;
	DECLARE v_held TEXT DEFAULT NULL;
	DECLARE v_names TEXT DEFAULT '[]';
	DECLARE v_tag VARCHAR(255) CHARACTER SET utf8mb4 DEFAULT NULL;
	DECLARE v_tag_spend DECIMAL(20,10) DEFAULT NULL;
	DECLARE v_tag_max DECIMAL(20,10) DEFAULT NULL;
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

	-- The tags that exist, each read once, by name: what only the
	-- statements do makes the call slow; the others are held below.
	SET v_n = IF(p_tags IS NULL, 0, JSON_LENGTH(p_tags));
	SET v_i = 0;
	WHILE v_outcome = 'held' AND v_i < v_n DO
		SET v_name = JSON_UNQUOTE(JSON_EXTRACT(p_tags,
			CONCAT('$[', v_i, ']')));
		SET v_found = 0, v_slow = 1, v_budgeted = 0;
		SELECT 1, t.blocked <> 0
			OR b.rpm_limit IS NOT NULL OR b.tpm_limit IS NOT NULL
			OR b.max_parallel_requests IS NOT NULL
			OR b.model_max_budget IS NOT NULL
			OR (t.models IS NOT NULL AND JSON_LENGTH(t.models) > 0
			    AND NOT JSON_CONTAINS(t.models, JSON_QUOTE(p_model)))
			OR (b.budget_duration IS NOT NULL AND
			    (t.spend_reset_at IS NULL OR t.spend_reset_at <= p_now
			     OR b.budget_reset_at IS NULL
			     OR b.budget_reset_at <= p_now)),
			b.max_budget IS NOT NULL
		INTO v_found, v_slow, v_budgeted
		FROM tags t LEFT JOIN budgets b ON b.budget_id = t.budget_id
		WHERE t.tag_name = v_name;
		IF v_found <> 0 AND v_slow <> 0 THEN
			SET v_outcome = 'slow';
		ELSEIF v_found <> 0 THEN
			-- IF(): a variable would go into the JSON as text.
			SET v_held = JSON_MERGE_PATCH(COALESCE(v_held, '{}'),
				JSON_OBJECT(v_name, IF(v_budgeted <> 0, 1, 0)));
			SET v_names = JSON_ARRAY_APPEND(v_names, '$', v_name);
		END IF;
		SET v_i = v_i + 1;
	END WHILE;
	IF v_outcome = 'held' AND p_user_id IS NULL AND p_key_token IS NULL
	   AND v_held IS NULL THEN
		SET v_outcome = 'none';
	END IF;

	IF v_outcome = 'held' THEN
		START TRANSACTION;
		INSERT INTO reservations (request_id, user_id, amount,
			expires_at, created_at, model, api_key, start_time,
			key_token, tags)
		VALUES (p_request_id, COALESCE(p_user_id, ''), p_amount,
			UTC_TIMESTAMP(6) + INTERVAL p_hold_seconds SECOND,
			UTC_TIMESTAMP(6), p_model, p_api_key, p_start_time,
			p_key_token, v_held);
		IF v_dup <> 0 THEN
			SET v_outcome = 'already';
		END IF;
		-- The customer first, then the key, then the tags by name:
		-- the order every transaction locks them in.
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
			-- nothing, so the row is read to tell whether it fits.
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
		SET v_i = 0;
		SET v_n = JSON_LENGTH(v_names);
		WHILE v_outcome = 'held' AND v_i < v_n DO
			SET v_name = JSON_UNQUOTE(JSON_EXTRACT(v_names,
				CONCAT('$[', v_i, ']')));
			BEGIN
				UPDATE tags a LEFT JOIN budgets b
					ON b.budget_id = a.budget_id
				SET a.reserved = a.reserved + p_amount
				WHERE a.tag_name = v_name AND
					(b.max_budget IS NULL OR
					 a.spend + a.reserved + p_amount <=
					 b.max_budget);
				IF ROW_COUNT() = 0 THEN
					SET v_found = 0, v_fits = 0;
					SELECT 1, b.max_budget IS NULL OR
						a.spend + a.reserved <=
						b.max_budget
					INTO v_found, v_fits
					FROM tags a LEFT JOIN budgets b
						ON b.budget_id = a.budget_id
					WHERE a.tag_name = v_name;
					-- Gone (deleted meanwhile): no
					-- account any more; its release
					-- changes nothing.
					IF v_found <> 0 AND
					   (v_fits = 0 OR p_amount > 0) THEN
						SET v_outcome = 'refused_tag';
						SET v_tag = v_name;
					END IF;
				END IF;
			END;
			SET v_i = v_i + 1;
		END WHILE;
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
	IF v_outcome = 'refused_tag' THEN
		SELECT t.spend, tb.max_budget INTO v_tag_spend, v_tag_max
		FROM tags t LEFT JOIN budgets tb ON tb.budget_id = t.budget_id
		WHERE t.tag_name = v_tag;
	END IF;
	SELECT v_outcome, v_key_spend, v_key_max, v_spend, v_budget_id,
		v_max, v_duration, v_held, v_tag, v_tag_spend, v_tag_max;
END //
DELIMITER ;

DROP PROCEDURE IF EXISTS tg_settle_v11;

DELIMITER //
-- tg_settle (sql/007), and the tags: those the hold p_hold_id was taken
-- from (its tags column) are charged and released as the customer and the
-- key are, after them, by name; the ledger row is indexed under each of
-- p_row_tags (a JSON array of the names the call gave; NULL: none).  A
-- tag whose period is due makes it 'long' (nothing done: the caller's
-- statements start the next period; they also take a hold on a tag's
-- model_spend row, which the caller knows of and does not send here).
CREATE PROCEDURE tg_settle_v11(
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
	IN p_now DATETIME,
	IN p_row_tags TEXT)
BEGIN
	DECLARE v_dup INT DEFAULT 0;
	DECLARE v_released DECIMAL(20,10) DEFAULT 0;
	DECLARE v_tags TEXT DEFAULT NULL;
	DECLARE v_names TEXT DEFAULT '[]';
	DECLARE v_name VARCHAR(255) CHARACTER SET utf8mb4 DEFAULT NULL;
	DECLARE v_due INT DEFAULT 0;
	DECLARE v_i INT DEFAULT 0;
	DECLARE v_n INT DEFAULT 0;
	DECLARE CONTINUE HANDLER FOR 1062 SET v_dup = 1;
	DECLARE CONTINUE HANDLER FOR NOT FOUND BEGIN END;
	DECLARE EXIT HANDLER FOR SQLEXCEPTION
	BEGIN
		ROLLBACK;
		RESIGNAL;
	END;

	START TRANSACTION;
	-- The hold's tags, its row locked until the end.
	IF p_hold_id IS NOT NULL THEN
		SELECT tags INTO v_tags FROM reservations
		WHERE request_id = p_hold_id FOR UPDATE;
	END IF;
	IF v_tags IS NOT NULL THEN
		SET v_names = JSON_KEYS(v_tags);
		SET v_n = JSON_LENGTH(v_names);
		WHILE v_due = 0 AND v_i < v_n DO
			SET v_name = JSON_UNQUOTE(JSON_EXTRACT(v_names,
				CONCAT('$[', v_i, ']')));
			SELECT b.budget_duration IS NOT NULL AND
				(t.spend_reset_at IS NULL OR
				 t.spend_reset_at <= p_now)
			INTO v_due
			FROM tags t JOIN budgets b ON b.budget_id = t.budget_id
			WHERE t.tag_name = v_name;
			SET v_i = v_i + 1;
		END WHILE;
	END IF;
	IF v_due <> 0 THEN
		ROLLBACK;
		SELECT 'long';
	ELSE
		INSERT INTO spend_logs (request_id, end_user, model, model_id,
			api_key, call_type, status, spend, prompt_tokens,
			completion_tokens, total_tokens, start_time, end_time,
			request_duration_ms, api_base, metadata)
		VALUES (p_request_id, p_end_user, p_model, p_model_id,
			p_api_key, p_call_type, p_status, p_spend,
			p_prompt_tokens, p_completion_tokens, p_total_tokens,
			p_start_time, p_end_time, p_duration_ms, p_api_base,
			p_metadata);
		IF v_dup <> 0 THEN
			ROLLBACK;
			SELECT 'duplicate';
		ELSE
			SET v_i = 0;
			SET v_n = IF(p_row_tags IS NULL, 0,
				JSON_LENGTH(p_row_tags));
			WHILE v_i < v_n DO
				INSERT INTO spend_log_tags (tag, request_id,
					start_time)
				VALUES (JSON_UNQUOTE(JSON_EXTRACT(p_row_tags,
					CONCAT('$[', v_i, ']'))), p_request_id,
					p_start_time)
				ON DUPLICATE KEY UPDATE
					start_time = VALUES(start_time);
				SET v_i = v_i + 1;
			END WHILE;
			IF p_hold_id IS NOT NULL THEN
				DELETE FROM reservations
				WHERE request_id = p_hold_id;
				IF ROW_COUNT() > 0 THEN
					SET v_released = p_hold_amount;
				END IF;
			END IF;
			-- spend is assigned before spend_reset_at, so the
			-- reset test sees the old value.
			IF p_user_id IS NOT NULL THEN
				UPDATE customers SET
					spend = IF(p_user_next IS NOT NULL AND
					           spend_reset_at <= p_now, 0,
					           spend) + p_spend,
					spend_reset_at = IF(
						p_user_next IS NOT NULL AND
						(spend_reset_at IS NULL OR
						 spend_reset_at <= p_now),
						p_user_next, spend_reset_at),
					reserved = GREATEST(reserved -
						v_released, 0)
				WHERE user_id = p_user_id;
			END IF;
			IF p_key_token IS NOT NULL THEN
				UPDATE api_keys SET
					spend = IF(p_key_next IS NOT NULL AND
					           spend_reset_at <= p_now, 0,
					           spend) + p_spend,
					spend_reset_at = IF(
						p_key_next IS NOT NULL AND
						(spend_reset_at IS NULL OR
						 spend_reset_at <= p_now),
						p_key_next, spend_reset_at),
					reserved = GREATEST(reserved -
						IF(p_key_release <> 0,
						   v_released, 0), 0)
				WHERE token = p_key_token;
			END IF;
			-- No period of these is due (above).
			SET v_i = 0;
			SET v_n = JSON_LENGTH(v_names);
			WHILE v_i < v_n DO
				UPDATE tags SET spend = spend + p_spend,
					reserved = GREATEST(reserved -
						v_released, 0)
				WHERE tag_name = JSON_UNQUOTE(JSON_EXTRACT(
					v_names, CONCAT('$[', v_i, ']')));
				SET v_i = v_i + 1;
			END WHILE;
			COMMIT;
			SELECT 'settled';
		END IF;
	END IF;
END //
DELIMITER ;
