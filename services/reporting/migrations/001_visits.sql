-- Sightings (one row per matched face, the idempotency key) and the visits derived from them.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'revisit_reporting') THEN
    CREATE ROLE revisit_reporting NOLOGIN;
  END IF;
END
$$;
GRANT USAGE ON SCHEMA reporting TO revisit_reporting;

CREATE TABLE sightings (
  tenant_id   text        NOT NULL,
  event_id    uuid        NOT NULL,
  site_id     text        NOT NULL,
  camera_id   text        NOT NULL,
  person_id   uuid        NOT NULL,
  captured_at timestamptz NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX sightings_person ON sightings (tenant_id, site_id, person_id, captured_at);

CREATE TABLE visits (
  tenant_id    text        NOT NULL,
  visit_id     uuid        NOT NULL,
  site_id      text        NOT NULL,
  person_id    uuid        NOT NULL,
  started_at   timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL,
  sightings    integer     NOT NULL,
  is_returning boolean     NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, visit_id)
);
CREATE INDEX visits_site_start ON visits (tenant_id, site_id, started_at);
CREATE INDEX visits_person ON visits (tenant_id, site_id, person_id, started_at);

ALTER TABLE sightings ENABLE ROW LEVEL SECURITY;
ALTER TABLE sightings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sightings
  USING (tenant_id = current_setting('revisit.tenant_id', true))
  WITH CHECK (tenant_id = current_setting('revisit.tenant_id', true));
ALTER TABLE visits ENABLE ROW LEVEL SECURITY;
ALTER TABLE visits FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON visits
  USING (tenant_id = current_setting('revisit.tenant_id', true))
  WITH CHECK (tenant_id = current_setting('revisit.tenant_id', true));
GRANT SELECT, INSERT ON sightings TO revisit_reporting;
GRANT SELECT, INSERT, UPDATE, DELETE ON visits TO revisit_reporting;
