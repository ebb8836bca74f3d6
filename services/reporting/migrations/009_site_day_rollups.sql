-- A fourth rollup level: each site per local date (in its `site_zones` zone), so a site's report by local day
-- and its totals read a month as ~30 rows of counters and a few thousand of persons, not the month's visits.
-- Same shape and rules as the levels of 008: who visited (`site_day_persons`), counters, dwell per whole minute.
-- A site's month totals take their distinct persons from `site_month_persons` (008).
-- `/v1/visits` pages are keyset pages on (started_at, visit_id): the site index gets visit_id as a key column
-- (a page is read in index order, no sort) and sightings as a payload column (a page reads only the index).

CREATE TABLE site_day_persons (
  tenant_id text NOT NULL, site_id text NOT NULL, day date NOT NULL, person_id uuid NOT NULL,
  visits integer NOT NULL, new_visits integer NOT NULL, returning_visits integer NOT NULL,
  PRIMARY KEY (tenant_id, site_id, day, person_id)
);
CREATE TABLE site_days (
  tenant_id text NOT NULL, site_id text NOT NULL, day date NOT NULL,
  visits integer NOT NULL, unique_visitors integer NOT NULL, new_visitors integer NOT NULL,
  returning_visitors integer NOT NULL, returning_visits integer NOT NULL, dwell_seconds double precision NOT NULL,
  PRIMARY KEY (tenant_id, site_id, day)
);
CREATE TABLE site_day_dwell (
  tenant_id text NOT NULL, site_id text NOT NULL, day date NOT NULL, minute smallint NOT NULL,
  visits integer NOT NULL,
  PRIMARY KEY (tenant_id, site_id, day, minute)
);

DO $$
DECLARE
  name text;
BEGIN
  FOREACH name IN ARRAY ARRAY['site_day_persons', 'site_days', 'site_day_dwell'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', name);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', name);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I'
                   ' USING (tenant_id = current_setting(''revisit.tenant_id'', true))'
                   ' WITH CHECK (tenant_id = current_setting(''revisit.tenant_id'', true))', name);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO revisit_reporting', name);
  END LOOP;
END
$$;

-- The comparison reads one month of every site's dwell per minute: in this order, an index-only scan (the key of
-- 008 leads with the site, so a month of all sites was a scan of every month).
CREATE INDEX site_month_dwell_by_month ON site_month_dwell (tenant_id, month, site_id, minute) INCLUDE (visits);

DROP INDEX visits_site_start;
CREATE INDEX visits_site_start ON visits (tenant_id, site_id, started_at, visit_id)
  INCLUDE (person_id, last_seen_at, is_returning, sightings);

-- Remake a tenant's rollups (every level) from its visits, each site's in its `site_zones` zone (UTC for a site
-- without one, which is then recorded). Visits whose contributions retention already took out (started before
-- `rollups_dropped_before`, partitions about to go) stay out. Runs as its caller, in the tenant's row-level
-- security context. Each level is grouped from one table of the visits' keys, persons first, then the counters
-- from the persons (unique, new, returning visitors) and from the visits (visits, returning visits, dwell).
CREATE OR REPLACE FUNCTION rebuild_tenant_rollups(tenant text) RETURNS void LANGUAGE plpgsql
SET search_path = reporting, pg_temp AS $$
DECLARE
  level record;
BEGIN
  PERFORM set_config('revisit.tenant_id', tenant, true);
  PERFORM set_config('work_mem', '256MB', true);  -- the groupings below stay in memory
  INSERT INTO site_zones (tenant_id, site_id, zone)
    SELECT DISTINCT tenant, site_id, 'UTC' FROM visits WHERE tenant_id = tenant ON CONFLICT DO NOTHING;
  CREATE TEMP TABLE located ON COMMIT DROP AS
    SELECT v.site_id, v.person_id, v.is_returning, d.day, date_trunc('month', d.day)::date AS month,
           extract(epoch FROM v.last_seen_at - v.started_at)::float8 AS dwell,
           least(floor(extract(epoch FROM v.last_seen_at - v.started_at) / 60), 240)::smallint AS minute
    FROM visits v JOIN site_zones z ON z.tenant_id = v.tenant_id AND z.site_id = v.site_id
    CROSS JOIN LATERAL (SELECT (v.started_at AT TIME ZONE z.zone)::date AS day) d
    WHERE v.tenant_id = tenant
      AND v.started_at >= coalesce((SELECT before FROM rollups_dropped_before WHERE tenant_id = tenant), '-infinity');
  ANALYZE located;
  FOR level IN SELECT * FROM (VALUES ('tenant_day', 'day'), ('tenant_month', 'month'), ('site_month', 'site_id, month'),
                                     ('site_day', 'site_id, day')) AS l(name, keys) LOOP
    EXECUTE format('DELETE FROM %I WHERE tenant_id = $1', level.name || '_persons') USING tenant;
    EXECUTE format('DELETE FROM %I WHERE tenant_id = $1', level.name || 's') USING tenant;
    EXECUTE format('DELETE FROM %I WHERE tenant_id = $1', level.name || '_dwell') USING tenant;
    EXECUTE format(
      'INSERT INTO %1$I SELECT $1, %2$s, person_id, count(*), count(*) FILTER (WHERE NOT is_returning),'
      '  count(*) FILTER (WHERE is_returning)'
      ' FROM located GROUP BY %2$s, person_id ORDER BY %2$s, person_id',
      level.name || '_persons', level.keys) USING tenant;
    EXECUTE format(
      'INSERT INTO %1$I SELECT $1, %2$s, t.visits, p.unique_visitors, p.new_visitors, p.returning_visitors,'
      '  t.returning_visits, t.dwell'
      ' FROM (SELECT %2$s, count(*) AS unique_visitors, count(*) FILTER (WHERE new_visits > 0) AS new_visitors,'
      '              count(*) FILTER (WHERE returning_visits > 0) AS returning_visitors'
      '       FROM %3$I WHERE tenant_id = $1 GROUP BY %2$s) p'
      ' JOIN (SELECT %2$s, count(*) AS visits, count(*) FILTER (WHERE is_returning) AS returning_visits,'
      '              sum(dwell) AS dwell'
      '       FROM located GROUP BY %2$s) t USING (%2$s)',
      level.name || 's', level.keys, level.name || '_persons') USING tenant;
    EXECUTE format(
      'INSERT INTO %1$I SELECT $1, %2$s, minute, count(*) FROM located GROUP BY %2$s, minute',
      level.name || '_dwell', level.keys) USING tenant;
  END LOOP;
  DROP TABLE located;
END
$$;

-- The visits already stored get their site-day rollups (the other levels are remade alike).
ALTER TABLE visits NO FORCE ROW LEVEL SECURITY;
SELECT rebuild_tenant_rollups(tenant_id) FROM (SELECT DISTINCT tenant_id FROM visits) AS tenants;
ALTER TABLE visits FORCE ROW LEVEL SECURITY;
