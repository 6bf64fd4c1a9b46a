-- Computers carry labels (`zone=eu-1`, free-form `key=value`): a JSON object.
ALTER TABLE computers ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
