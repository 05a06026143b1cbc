-- tollgate schema, version 13: a virtual key's model aliases.
--
-- /key/generate and /key/update take LiteLLM's "aliases": {"<alias>":
-- "<model_name>"}.  A call made with the key that names an alias is a call
-- of the model it stands for: the key's models list, the deployments, the
-- price and the ledger row are that model's.  A JSON object; NULL: none.
ALTER TABLE api_keys
	ADD COLUMN aliases TEXT NULL;
