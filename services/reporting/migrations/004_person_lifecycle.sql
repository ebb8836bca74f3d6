-- The person lifecycle (merge, split, erasure): sightings are named by their FaceIngested id (the matcher's
-- vector key and the id lifecycle events use), move between persons and are deleted; persons merged or
-- erased are remembered so a sighting still in flight cannot bring them back; each operation is done once.
ALTER TABLE sightings ADD COLUMN source_event_id uuid;
CREATE UNIQUE INDEX sightings_source ON sightings (tenant_id, source_event_id);
CREATE INDEX sightings_of_person ON sightings (tenant_id, person_id);
GRANT UPDATE, DELETE ON sightings TO revisit_reporting;

-- A person that no longer exists: merged into `successor_id`, or erased (successor_id NULL).
CREATE TABLE retired_persons (
  tenant_id    text        NOT NULL,
  person_id    uuid        NOT NULL,
  successor_id uuid,
  operation_id uuid        NOT NULL,
  retired_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, person_id)
);
CREATE INDEX retired_persons_successor ON retired_persons (tenant_id, successor_id);

-- Sightings a split gave to `person_id` before they arrived here (in flight from the matcher).
CREATE TABLE claimed_sightings (
  tenant_id       text NOT NULL,
  source_event_id uuid NOT NULL,
  person_id       uuid NOT NULL,
  operation_id    uuid NOT NULL,
  PRIMARY KEY (tenant_id, source_event_id)
);

-- One row per lifecycle operation done here: what it changed, so a redelivery announces the same events.
CREATE TABLE lifecycle_operations (
  tenant_id    text        NOT NULL,
  operation_id uuid        NOT NULL,
  kind         text        NOT NULL,
  person_id    uuid        NOT NULL,
  outcome      jsonb       NOT NULL,
  completed_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, operation_id)
);

ALTER TABLE retired_persons ENABLE ROW LEVEL SECURITY;
ALTER TABLE retired_persons FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON retired_persons
  USING (tenant_id = current_setting('revisit.tenant_id', true))
  WITH CHECK (tenant_id = current_setting('revisit.tenant_id', true));
ALTER TABLE lifecycle_operations ENABLE ROW LEVEL SECURITY;
ALTER TABLE lifecycle_operations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON lifecycle_operations
  USING (tenant_id = current_setting('revisit.tenant_id', true))
  WITH CHECK (tenant_id = current_setting('revisit.tenant_id', true));
ALTER TABLE claimed_sightings ENABLE ROW LEVEL SECURITY;
ALTER TABLE claimed_sightings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON claimed_sightings
  USING (tenant_id = current_setting('revisit.tenant_id', true))
  WITH CHECK (tenant_id = current_setting('revisit.tenant_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON retired_persons TO revisit_reporting;
GRANT SELECT, INSERT, UPDATE ON claimed_sightings TO revisit_reporting;
GRANT SELECT, INSERT ON lifecycle_operations TO revisit_reporting;
