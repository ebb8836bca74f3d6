-- Each tenant's retention policy (PUT /v1/retention), mirrored into the registry KV bucket as
-- `<tenant>.retention` for the services' retention jobs. A tenant without a row has the defaults of settings.
CREATE TABLE retention_policies (
  tenant_id           text        PRIMARY KEY,
  crops_days          integer     NOT NULL CHECK (crops_days > 0),
  vectors_unseen_days integer     NOT NULL CHECK (vectors_unseen_days > 0),
  sightings_days      integer     NOT NULL CHECK (sightings_days > 0),
  visits_days         integer     NOT NULL CHECK (visits_days >= sightings_days),
  updated_at          timestamptz NOT NULL
);
ALTER TABLE retention_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE retention_policies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON retention_policies
  USING (tenant_id = current_setting('revisit.tenant_id', true))
  WITH CHECK (tenant_id = current_setting('revisit.tenant_id', true));
GRANT SELECT, INSERT, UPDATE ON retention_policies TO revisit_identity;
