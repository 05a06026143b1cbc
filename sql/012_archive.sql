-- tollgate schema, version 12: archiving the ledger (tollgate-archive).
--
-- spend_logs keeps one row per call forever.  tollgate-archive --before
-- YYYY-MM moves the rows of the months before YYYY-MM (closed months) into
-- summaries: one row per UTC day, customer, key, model and route, with the
-- sums the reports read (spend, tokens, calls, successful calls), and one
-- per day, tag and model for the tags the rows named.  A row moves in the
-- same transaction that adds it to its summary, so it is counted in one
-- place or the other, never both and never neither: the reports
-- (/customer/daily/activity, /spend/logs?summarize=true, the UI's Usage
-- tab) read both, and what they add up does not change.  The accounts'
-- spend columns are counters of their own and do not move either.
--
-- The day is the grain, not the month, because the reports are per day:
-- an archived month still shows its days.  Empty strings stand for a
-- NULL key, model or route (a key column of a primary key cannot be NULL).
CREATE TABLE IF NOT EXISTS spend_archive (
	day DATE NOT NULL,
	end_user VARBINARY(255) NOT NULL,
	api_key VARCHAR(64) NOT NULL,
	model VARCHAR(255) NOT NULL,
	call_type VARCHAR(64) NOT NULL,
	spend DECIMAL(30,10) NOT NULL DEFAULT 0,
	prompt_tokens BIGINT NOT NULL DEFAULT 0,
	completion_tokens BIGINT NOT NULL DEFAULT 0,
	total_tokens BIGINT NOT NULL DEFAULT 0,
	requests BIGINT NOT NULL DEFAULT 0,
	successful_requests BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (day, end_user, api_key, model, call_type),
	KEY spend_archive_end_user (end_user, day),
	KEY spend_archive_api_key (api_key, day)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS spend_archive_tags (
	day DATE NOT NULL,
	tag VARBINARY(255) NOT NULL,
	model VARCHAR(255) NOT NULL,
	spend DECIMAL(30,10) NOT NULL DEFAULT 0,
	prompt_tokens BIGINT NOT NULL DEFAULT 0,
	completion_tokens BIGINT NOT NULL DEFAULT 0,
	total_tokens BIGINT NOT NULL DEFAULT 0,
	requests BIGINT NOT NULL DEFAULT 0,
	successful_requests BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (day, tag, model),
	KEY spend_archive_tags_tag (tag, day)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- What each archived month holds: the rows moved and their spend, and
-- when the first and the last batch of it landed.
CREATE TABLE IF NOT EXISTS archived_months (
	month CHAR(7) NOT NULL,
	rows_archived BIGINT NOT NULL DEFAULT 0,
	spend DECIMAL(30,10) NOT NULL DEFAULT 0,
	first_at DATETIME NOT NULL,
	last_at DATETIME NOT NULL,
	PRIMARY KEY (month)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- tg_settle_v11 (sql/011) once more, with one test added: a settlement
-- whose hold is gone and whose row is not in spend_logs is the retry of
-- one that went through and whose row was archived since (a settlement
-- deletes the hold and writes the row in one transaction, and so does the
-- reclaim of an expired hold).  It answers 'duplicate', having changed
-- nothing, as it does when the row is there.  The same signature and
-- answers: programs of version 11 get the test too.
DROP PROCEDURE IF EXISTS tg_settle_v11;

DELIMITER //
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
	DECLARE v_held INT DEFAULT 0;
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
		SELECT 1, tags INTO v_held, v_tags FROM reservations
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
		IF v_dup <> 0 OR (p_hold_id IS NOT NULL AND v_held = 0) THEN
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
