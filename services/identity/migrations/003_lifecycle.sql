-- The person lifecycle: each person's sightings (for its page, splits and erasure), operations (merge,
-- split, erasure) with the events they publish (an outbox) and the steps other services completed,
-- persons retired by a merge or an erasure, and pairs an operator marked as different people.

CREATE TABLE sightings (
  tenant_id        text        NOT NULL,
  sighting_id      uuid        NOT NULL,  -- FaceMatched.source_event_id: the matcher's vector key too
  person_id        uuid        NOT NULL,
  site_id          text        NOT NULL,
  camera_id        text        NOT NULL,
  captured_at      timestamptz NOT NULL,
  similarity       real,
  crop_key         text,
  PRIMARY KEY (tenant_id, sighting_id)
);
CREATE INDEX sightings_person ON sightings (tenant_id, person_id, captured_at DESC);

ALTER TABLE persons ADD COLUMN sightings integer NOT NULL DEFAULT 0;

CREATE TABLE retired_persons (
  tenant_id    text        NOT NULL,
  person_id    uuid        NOT NULL,
  merged_into  uuid,                    -- NULL: erased
  operation_id uuid        NOT NULL,
  retired_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, person_id)
);

CREATE TABLE operations (
  tenant_id      text        NOT NULL,
  operation_id   uuid        NOT NULL,
  kind           text        NOT NULL CHECK (kind IN ('merge', 'split', 'erasure', 'kind_change')),
  status         text        NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed')),
  person_id      uuid        NOT NULL,
  requested_by   text        NOT NULL,
  expected_steps text[]      NOT NULL,  -- '<service>/<step>'
  outbox         jsonb       NOT NULL,  -- [{"subject", "event"}]: published after commit, again until completed
  result         jsonb       NOT NULL DEFAULT '{}'::jsonb,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, operation_id)
);

-- Which operations are still open, across tenants, without their content: the resume loop lists it
-- (no RLS: it holds ids only) and then reads each operation in its tenant's transaction.
CREATE TABLE open_operations (
  tenant_id    text        NOT NULL,
  operation_id uuid        NOT NULL,
  opened_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, operation_id)
);
GRANT SELECT, INSERT, DELETE ON open_operations TO revisit_identity;

-- A person takes part in one open operation at a time (the primary key says so): every service applies
-- the operations on a person in the order identity started them, whatever its consumers' timing.
CREATE TABLE operation_persons (
  tenant_id    text NOT NULL,
  person_id    uuid NOT NULL,
  operation_id uuid NOT NULL,
  PRIMARY KEY (tenant_id, person_id)
);

CREATE TABLE operation_steps (
  tenant_id    text        NOT NULL,
  operation_id uuid        NOT NULL,
  step         text        NOT NULL,  -- '<service>/<step>'
  changed      integer     NOT NULL,
  completed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, operation_id, step)
);

CREATE TABLE different_persons (
  tenant_id  text        NOT NULL,
  person_a   uuid        NOT NULL,  -- the smaller id of the pair
  person_b   uuid        NOT NULL,
  marked_by  text        NOT NULL,
  marked_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, person_a, person_b),
  CHECK (person_a < person_b)
);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['sightings', 'retired_persons', 'operations', 'operation_persons', 'operation_steps', 'different_persons'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_setting(''revisit.tenant_id'', true))'
                   ' WITH CHECK (tenant_id = current_setting(''revisit.tenant_id'', true))', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO revisit_identity', t);
  END LOOP;
END
$$;
GRANT DELETE ON persons TO revisit_identity;
