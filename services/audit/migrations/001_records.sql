-- Append-only, hash-chained audit records: one chain per tenant. The service role may only insert and read.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'revisit_audit') THEN
    CREATE ROLE revisit_audit NOLOGIN;
  END IF;
END
$$;
GRANT USAGE ON SCHEMA audit TO revisit_audit;

CREATE TABLE records (
  tenant_id   text        NOT NULL,
  seq         bigint      NOT NULL CHECK (seq >= 1),
  event_id    uuid        NOT NULL,
  service     text        NOT NULL,
  action      text        NOT NULL,
  actor       text        NOT NULL,
  resource    text        NOT NULL,
  details     jsonb       NOT NULL,
  occurred_at timestamptz NOT NULL,
  recorded_at timestamptz NOT NULL,
  prev_hash   text        NOT NULL,
  hash        text        NOT NULL,
  PRIMARY KEY (tenant_id, seq),
  UNIQUE (tenant_id, event_id)
);

ALTER TABLE records ENABLE ROW LEVEL SECURITY;
ALTER TABLE records FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON records
  USING (tenant_id = current_setting('revisit.tenant_id', true))
  WITH CHECK (tenant_id = current_setting('revisit.tenant_id', true));
REVOKE ALL ON records FROM revisit_audit;
GRANT SELECT, INSERT ON records TO revisit_audit;
