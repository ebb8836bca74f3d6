-- Unidentified sightings: faces the matcher counted but never made a person (crop below its quality floor).
-- One row per FaceUnidentified event, the idempotency key; reports count them beside the visits.
CREATE TABLE unidentified_sightings (
  tenant_id   text        NOT NULL,
  event_id    uuid        NOT NULL,
  site_id     text        NOT NULL,
  camera_id   text        NOT NULL,
  captured_at timestamptz NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX unidentified_sightings_site_time ON unidentified_sightings (tenant_id, site_id, captured_at);

ALTER TABLE unidentified_sightings ENABLE ROW LEVEL SECURITY;
ALTER TABLE unidentified_sightings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON unidentified_sightings
  USING (tenant_id = current_setting('revisit.tenant_id', true))
  WITH CHECK (tenant_id = current_setting('revisit.tenant_id', true));
GRANT SELECT, INSERT ON unidentified_sightings TO revisit_reporting;
