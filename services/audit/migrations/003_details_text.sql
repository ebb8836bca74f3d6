-- `details` is hashed as the exact JSON text it is stored as: jsonb rewrites numbers (1e16 comes back as
-- 10000000000000000), so a hash over what was inserted did not match what verify re-read. Earlier
-- records keep their jsonb details (and their hash over the parsed value); new ones store text only.
ALTER TABLE records ADD COLUMN details_text text;
ALTER TABLE records ALTER COLUMN details DROP NOT NULL;
ALTER TABLE records ADD CONSTRAINT details_in_one_column CHECK ((details IS NULL) <> (details_text IS NULL));

-- The runtime login is a separate LOGIN role that inherits revisit_audit's SELECT and INSERT and owns
-- nothing (see services/common/postgres.py connect_postgres_as_login); make sure nothing else was granted.
REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON records FROM revisit_audit;
REVOKE ALL ON schema_migrations FROM revisit_audit;
