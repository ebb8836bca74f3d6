-- The registry: a tenant's sites (with their IANA time zone), cameras, edge devices and allowed
-- embedding models. Identity mirrors it into the NATS KV bucket `registry` for ingest and reporting.

CREATE TABLE sites (
  tenant_id     text        NOT NULL,
  site_id       text        NOT NULL,
  name          text        NOT NULL,
  time_zone     text        NOT NULL,
  opening_hours jsonb,
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, site_id)
);

CREATE TABLE cameras (
  tenant_id  text        NOT NULL,
  camera_id  text        NOT NULL,
  site_id    text        NOT NULL,
  name       text,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, camera_id),
  FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, site_id)
);

CREATE TABLE tenant_models (
  tenant_id       text        NOT NULL,
  embedding_model text        NOT NULL,
  added_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, embedding_model)
);

CREATE TABLE devices (
  tenant_id   text        NOT NULL,
  device_id   text        NOT NULL,
  site_id     text        NOT NULL,
  camera_ids  text[]      NOT NULL,
  public_key  text        NOT NULL,  -- the device's NATS user nkey (never its seed)
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz,
  PRIMARY KEY (tenant_id, device_id),
  FOREIGN KEY (tenant_id, site_id) REFERENCES sites (tenant_id, site_id)
);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['sites', 'cameras', 'tenant_models', 'devices'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_setting(''revisit.tenant_id'', true))'
                   ' WITH CHECK (tenant_id = current_setting(''revisit.tenant_id'', true))', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO revisit_identity', t);
  END LOOP;
END
$$;
