-- tollgate schema, version 11: tags (SPEC 14).
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
