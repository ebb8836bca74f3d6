-- The person directory. Rows are tenant-scoped and protected by row-level security.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'revisit_identity') THEN
    CREATE ROLE revisit_identity NOLOGIN;
  END IF;
END
$$;
GRANT USAGE ON SCHEMA identity TO revisit_identity;

CREATE TABLE persons (
  tenant_id        text        NOT NULL,
  person_id        uuid        NOT NULL,
  kind             text        NOT NULL CHECK (kind IN ('customer', 'staff')),
  first_site_id    text        NOT NULL,
  first_seen_at    timestamptz NOT NULL,
  last_seen_at     timestamptz NOT NULL,
  created_by_event uuid        NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, person_id)
);
CREATE INDEX persons_last_seen ON persons (tenant_id, last_seen_at DESC);

ALTER TABLE persons ENABLE ROW LEVEL SECURITY;
ALTER TABLE persons FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON persons
  USING (tenant_id = current_setting('revisit.tenant_id', true))
  WITH CHECK (tenant_id = current_setting('revisit.tenant_id', true));
GRANT SELECT, INSERT, UPDATE ON persons TO revisit_identity;
