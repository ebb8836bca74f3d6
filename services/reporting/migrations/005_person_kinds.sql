-- Staff or customer. Every sighting is stored with the kind it arrived with (before, staff sightings were
-- never stored: every stored one was a customer's), so marking a person staff and back re-attributes its
-- visits. `person_kinds` holds the kind an operator gave a person (PersonKindChanged); it wins over the
-- kind its sightings arrive with. Visits exist only for sightings whose person counts as a customer.
ALTER TABLE sightings ADD COLUMN person_kind text NOT NULL DEFAULT 'customer'
  CHECK (person_kind IN ('customer', 'staff'));

CREATE TABLE person_kinds (
  tenant_id    text        NOT NULL,
  person_id    uuid        NOT NULL,
  kind         text        NOT NULL CHECK (kind IN ('customer', 'staff')),
  operation_id uuid        NOT NULL,
  marked_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, person_id)
);

ALTER TABLE person_kinds ENABLE ROW LEVEL SECURITY;
ALTER TABLE person_kinds FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON person_kinds
  USING (tenant_id = current_setting('revisit.tenant_id', true))
  WITH CHECK (tenant_id = current_setting('revisit.tenant_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON person_kinds TO revisit_reporting;
