-- tollgate schema, version 14: the totals GET /metrics reports.
--
-- Each process counts in memory (LLM calls by route, model and status,
-- tokens, spend, the database's and the upstreams' latency histograms)
-- and adds its counts here every few seconds, in one short transaction
-- of its own, never on a call's way (lib/metrics.c): every process and
-- every web node then reports the same totals.  One row per counter and
-- label set; a histogram is a row per bucket (cumulative, as the format
-- has them), its _sum and its _count.  The rows are few (routes x models
-- x statuses, and the buckets): a scrape reads them all.
CREATE TABLE IF NOT EXISTS metrics_counters (
	name VARCHAR(96) NOT NULL,
	labels VARBINARY(600) NOT NULL,
	value DECIMAL(38,10) NOT NULL DEFAULT 0,
	PRIMARY KEY (name, labels)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
