-- Sightings (by captured_at) and visits (by started_at) become monthly range partitions (UTC months), so
-- retention drops whole months instead of deleting rows, and a month's report reads one or two partitions.
-- A primary key of a partitioned table includes the partition key: captured_at is fixed for an event id and
-- started_at for a visit id (it is its first sighting's captured_at), so they still identify a row.
-- Partitions are made on demand (`ensure_month_partitions`, before a batch of sightings is stored, at start
-- and by the retention job) by the schema owner: the service role may create and drop nothing itself.

-- 1. Functions the service role calls; they run as the schema owner (SECURITY DEFINER), for these two tables only.
CREATE FUNCTION ensure_month_partitions(parent text, first timestamptz, last timestamptz) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = reporting, pg_temp AS $$
DECLARE
  month timestamp := date_trunc('month', first AT TIME ZONE 'UTC');
  made integer := 0;
  name text;
BEGIN
  IF parent NOT IN ('sightings', 'visits') THEN
    RAISE EXCEPTION 'no monthly partitions for table %', parent;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('reporting.partitions.' || parent));
  WHILE month <= last AT TIME ZONE 'UTC' LOOP
    name := parent || '_' || to_char(month, 'YYYY_MM');
    IF to_regclass(name) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', name, parent,
                     month AT TIME ZONE 'UTC', (month + interval '1 month') AT TIME ZONE 'UTC');
      made := made + 1;
    END IF;
    month := month + interval '1 month';
  END LOOP;
  RETURN made;
END
$$;

CREATE FUNCTION month_partitions(parent text) RETURNS TABLE (name text, ends_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = reporting, pg_temp AS $$
  SELECT c.relname::text, (to_date(right(c.relname, 7), 'YYYY_MM') + interval '1 month') AT TIME ZONE 'UTC'
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  WHERE i.inhparent = to_regclass(parent) AND parent IN ('sightings', 'visits')
  ORDER BY 1
$$;

CREATE FUNCTION drop_month_partitions_before(parent text, horizon timestamptz) RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = reporting, pg_temp AS $$
DECLARE
  dropped text[] := '{}';
  partition record;
BEGIN
  IF parent NOT IN ('sightings', 'visits') THEN
    RAISE EXCEPTION 'no monthly partitions for table %', parent;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('reporting.partitions.' || parent));
  FOR partition IN SELECT * FROM month_partitions(parent) WHERE ends_at <= horizon LOOP
    EXECUTE format('DROP TABLE %I', partition.name);
    dropped := dropped || partition.name;
  END LOOP;
  RETURN dropped;
END
$$;

REVOKE ALL ON FUNCTION ensure_month_partitions(text, timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION month_partitions(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION drop_month_partitions_before(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ensure_month_partitions(text, timestamptz, timestamptz) TO revisit_reporting;
GRANT EXECUTE ON FUNCTION month_partitions(text) TO revisit_reporting;
GRANT EXECUTE ON FUNCTION drop_month_partitions_before(text, timestamptz) TO revisit_reporting;

-- 2. Sightings: the old table keeps its rows until they are copied (the owner reads every tenant's rows).
ALTER TABLE sightings RENAME TO sightings_unpartitioned;
ALTER TABLE sightings_unpartitioned RENAME CONSTRAINT sightings_pkey TO sightings_unpartitioned_pkey;
ALTER TABLE sightings_unpartitioned NO FORCE ROW LEVEL SECURITY;
CREATE TABLE sightings (
  tenant_id       text        NOT NULL,
  event_id        uuid        NOT NULL,
  site_id         text        NOT NULL,
  camera_id       text        NOT NULL,
  person_id       uuid        NOT NULL,
  captured_at     timestamptz NOT NULL,
  recorded_at     timestamptz NOT NULL DEFAULT now(),
  source_event_id uuid,
  person_kind     text        NOT NULL DEFAULT 'customer' CHECK (person_kind IN ('customer', 'staff')),
  PRIMARY KEY (tenant_id, event_id, captured_at)
) PARTITION BY RANGE (captured_at);
SELECT ensure_month_partitions('sightings', min(captured_at), max(captured_at)) FROM sightings_unpartitioned
  HAVING count(*) > 0;
INSERT INTO sightings (tenant_id, event_id, site_id, camera_id, person_id, captured_at, recorded_at,
                       source_event_id, person_kind)
  SELECT tenant_id, event_id, site_id, camera_id, person_id, captured_at, recorded_at, source_event_id, person_kind
  FROM sightings_unpartitioned;
DROP TABLE sightings_unpartitioned;
CREATE UNIQUE INDEX sightings_source ON sightings (tenant_id, source_event_id, captured_at);
CREATE INDEX sightings_person ON sightings (tenant_id, site_id, person_id, captured_at);
CREATE INDEX sightings_of_person ON sightings (tenant_id, person_id);

-- 3. Visits, likewise.
ALTER TABLE visits RENAME TO visits_unpartitioned;
ALTER TABLE visits_unpartitioned RENAME CONSTRAINT visits_pkey TO visits_unpartitioned_pkey;
ALTER TABLE visits_unpartitioned NO FORCE ROW LEVEL SECURITY;
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
  archived     boolean     NOT NULL DEFAULT false,
  PRIMARY KEY (tenant_id, visit_id, started_at)
) PARTITION BY RANGE (started_at);
SELECT ensure_month_partitions('visits', min(started_at), max(started_at)) FROM visits_unpartitioned
  HAVING count(*) > 0;
INSERT INTO visits (tenant_id, visit_id, site_id, person_id, started_at, last_seen_at, sightings, is_returning,
                    updated_at, archived)
  SELECT tenant_id, visit_id, site_id, person_id, started_at, last_seen_at, sightings, is_returning, updated_at, archived
  FROM visits_unpartitioned;
DROP TABLE visits_unpartitioned;
-- a site's report reads only this index (index-only scan): what it counts is in it
CREATE INDEX visits_site_start ON visits (tenant_id, site_id, started_at)
  INCLUDE (person_id, last_seen_at, is_returning);
CREATE INDEX visits_person ON visits (tenant_id, site_id, person_id, started_at);
CREATE INDEX visits_of_person ON visits (tenant_id, person_id);

-- 4. Row-level security and grants, as before.
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
GRANT SELECT, INSERT, UPDATE, DELETE ON sightings TO revisit_reporting;
GRANT SELECT, INSERT, UPDATE, DELETE ON visits TO revisit_reporting;
