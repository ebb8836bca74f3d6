-- Rollups for the reports that span many sites: the tenant per local date, the tenant per local month, and each
-- site per local month (the multi-site comparison). A visit counts on its site's local date; which zone a
-- site's rollups were made in is `site_zones.zone` (UTC until a report names the site's zone from the
-- registry; then they are remade in it). Unique visitors do not add up across dates or sites, so each level
-- keeps who visited (`*_persons`, one row per key and person: visits, new visits, returning visits) besides
-- its counters; a person's row going from 0 to more visits adds one unique visitor, and back. Dwell per whole
-- minute (up to 240, the last one holding longer) gives the median to the minute and every dwell bucket.
-- They are changed by the same transaction that changes the visits (+1 for a visit added, -1 removed).

CREATE TABLE site_zones (
  tenant_id text NOT NULL,
  site_id   text NOT NULL,
  zone      text NOT NULL,
  PRIMARY KEY (tenant_id, site_id)
);

-- The visits before `before` had their contributions taken out when retention dropped their partitions: a repeat
-- (a drop that failed after the rollups changed) takes nothing out twice.
CREATE TABLE rollups_dropped_before (
  tenant_id text        NOT NULL PRIMARY KEY,
  before    timestamptz NOT NULL
);

CREATE TABLE tenant_day_persons (
  tenant_id text NOT NULL, day date NOT NULL, person_id uuid NOT NULL,
  visits integer NOT NULL, new_visits integer NOT NULL, returning_visits integer NOT NULL,
  PRIMARY KEY (tenant_id, day, person_id)
);
CREATE TABLE tenant_days (
  tenant_id text NOT NULL, day date NOT NULL,
  visits integer NOT NULL, unique_visitors integer NOT NULL, new_visitors integer NOT NULL,
  returning_visitors integer NOT NULL, returning_visits integer NOT NULL, dwell_seconds double precision NOT NULL,
  PRIMARY KEY (tenant_id, day)
);
CREATE TABLE tenant_day_dwell (
  tenant_id text NOT NULL, day date NOT NULL, minute smallint NOT NULL, visits integer NOT NULL,
  PRIMARY KEY (tenant_id, day, minute)
);

CREATE TABLE tenant_month_persons (
  tenant_id text NOT NULL, month date NOT NULL, person_id uuid NOT NULL,
  visits integer NOT NULL, new_visits integer NOT NULL, returning_visits integer NOT NULL,
  PRIMARY KEY (tenant_id, month, person_id)
);
CREATE TABLE tenant_months (
  tenant_id text NOT NULL, month date NOT NULL,
  visits integer NOT NULL, unique_visitors integer NOT NULL, new_visitors integer NOT NULL,
  returning_visitors integer NOT NULL, returning_visits integer NOT NULL, dwell_seconds double precision NOT NULL,
  PRIMARY KEY (tenant_id, month)
);
CREATE TABLE tenant_month_dwell (
  tenant_id text NOT NULL, month date NOT NULL, minute smallint NOT NULL, visits integer NOT NULL,
  PRIMARY KEY (tenant_id, month, minute)
);

CREATE TABLE site_month_persons (
  tenant_id text NOT NULL, site_id text NOT NULL, month date NOT NULL, person_id uuid NOT NULL,
  visits integer NOT NULL, new_visits integer NOT NULL, returning_visits integer NOT NULL,
  PRIMARY KEY (tenant_id, site_id, month, person_id)
);
CREATE TABLE site_months (
  tenant_id text NOT NULL, site_id text NOT NULL, month date NOT NULL,
  visits integer NOT NULL, unique_visitors integer NOT NULL, new_visitors integer NOT NULL,
  returning_visitors integer NOT NULL, returning_visits integer NOT NULL, dwell_seconds double precision NOT NULL,
  PRIMARY KEY (tenant_id, site_id, month)
);
CREATE TABLE site_month_dwell (
  tenant_id text NOT NULL, site_id text NOT NULL, month date NOT NULL, minute smallint NOT NULL,
  visits integer NOT NULL,
  PRIMARY KEY (tenant_id, site_id, month, minute)
);

DO $$
DECLARE
  name text;
BEGIN
  FOREACH name IN ARRAY ARRAY['site_zones', 'rollups_dropped_before', 'tenant_day_persons', 'tenant_days', 'tenant_day_dwell',
                              'tenant_month_persons', 'tenant_months', 'tenant_month_dwell',
                              'site_month_persons', 'site_months', 'site_month_dwell'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', name);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', name);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I'
                   ' USING (tenant_id = current_setting(''revisit.tenant_id'', true))'
                   ' WITH CHECK (tenant_id = current_setting(''revisit.tenant_id'', true))', name);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO revisit_reporting', name);
  END LOOP;
END
$$;

-- Remake a tenant's rollups from its visits, each site's in its `site_zones` zone (UTC for a site without
-- one, which is then recorded). Runs as its caller, in the tenant's row-level security context.
CREATE FUNCTION rebuild_tenant_rollups(tenant text) RETURNS void LANGUAGE plpgsql SET search_path = reporting, pg_temp AS $$
BEGIN
  PERFORM set_config('revisit.tenant_id', tenant, true);
  PERFORM set_config('work_mem', '256MB', true);  -- the groupings below stay in memory
  INSERT INTO site_zones (tenant_id, site_id, zone)
    SELECT DISTINCT tenant, site_id, 'UTC' FROM visits WHERE tenant_id = tenant ON CONFLICT DO NOTHING;
  DELETE FROM tenant_day_persons WHERE tenant_id = tenant;
  DELETE FROM tenant_days WHERE tenant_id = tenant;
  DELETE FROM tenant_day_dwell WHERE tenant_id = tenant;
  DELETE FROM tenant_month_persons WHERE tenant_id = tenant;
  DELETE FROM tenant_months WHERE tenant_id = tenant;
  DELETE FROM tenant_month_dwell WHERE tenant_id = tenant;
  DELETE FROM site_month_persons WHERE tenant_id = tenant;
  DELETE FROM site_months WHERE tenant_id = tenant;
  DELETE FROM site_month_dwell WHERE tenant_id = tenant;
  CREATE TEMP TABLE located ON COMMIT DROP AS
    SELECT v.site_id, v.person_id, v.is_returning, d.day, date_trunc('month', d.day)::date AS month,
           extract(epoch FROM v.last_seen_at - v.started_at)::float8 AS dwell,
           least(floor(extract(epoch FROM v.last_seen_at - v.started_at) / 60), 240)::smallint AS minute
    FROM visits v JOIN site_zones z ON z.tenant_id = v.tenant_id AND z.site_id = v.site_id
    CROSS JOIN LATERAL (SELECT (v.started_at AT TIME ZONE z.zone)::date AS day) d
    WHERE v.tenant_id = tenant;
  ANALYZE located;
  INSERT INTO tenant_day_persons
    SELECT tenant, day, person_id, count(*), count(*) FILTER (WHERE NOT is_returning), count(*) FILTER (WHERE is_returning)
    FROM located GROUP BY day, person_id;
  INSERT INTO tenant_month_persons
    SELECT tenant, month, person_id, count(*), count(*) FILTER (WHERE NOT is_returning), count(*) FILTER (WHERE is_returning)
    FROM located GROUP BY month, person_id;
  INSERT INTO site_month_persons
    SELECT tenant, site_id, month, person_id, count(*), count(*) FILTER (WHERE NOT is_returning),
           count(*) FILTER (WHERE is_returning)
    FROM located GROUP BY site_id, month, person_id;
  INSERT INTO tenant_days
    SELECT tenant, p.day, t.visits, p.unique_visitors, p.new_visitors, p.returning_visitors, t.returning_visits, t.dwell
    FROM (SELECT day, count(*) AS unique_visitors, count(*) FILTER (WHERE new_visits > 0) AS new_visitors,
                 count(*) FILTER (WHERE returning_visits > 0) AS returning_visitors
          FROM tenant_day_persons WHERE tenant_id = tenant GROUP BY day) p
    JOIN (SELECT day, count(*) AS visits, count(*) FILTER (WHERE is_returning) AS returning_visits, sum(dwell) AS dwell
          FROM located GROUP BY day) t USING (day);
  INSERT INTO tenant_months
    SELECT tenant, p.month, t.visits, p.unique_visitors, p.new_visitors, p.returning_visitors, t.returning_visits,
           t.dwell
    FROM (SELECT month, count(*) AS unique_visitors, count(*) FILTER (WHERE new_visits > 0) AS new_visitors,
                 count(*) FILTER (WHERE returning_visits > 0) AS returning_visitors
          FROM tenant_month_persons WHERE tenant_id = tenant GROUP BY month) p
    JOIN (SELECT month, count(*) AS visits, count(*) FILTER (WHERE is_returning) AS returning_visits,
                 sum(dwell) AS dwell
          FROM located GROUP BY month) t USING (month);
  INSERT INTO site_months
    SELECT tenant, p.site_id, p.month, t.visits, p.unique_visitors, p.new_visitors, p.returning_visitors,
           t.returning_visits, t.dwell
    FROM (SELECT site_id, month, count(*) AS unique_visitors, count(*) FILTER (WHERE new_visits > 0) AS new_visitors,
                 count(*) FILTER (WHERE returning_visits > 0) AS returning_visitors
          FROM site_month_persons WHERE tenant_id = tenant GROUP BY site_id, month) p
    JOIN (SELECT site_id, month, count(*) AS visits, count(*) FILTER (WHERE is_returning) AS returning_visits,
                 sum(dwell) AS dwell
          FROM located GROUP BY site_id, month) t USING (site_id, month);
  INSERT INTO tenant_day_dwell SELECT tenant, day, minute, count(*) FROM located GROUP BY day, minute;
  INSERT INTO tenant_month_dwell SELECT tenant, month, minute, count(*) FROM located GROUP BY month, minute;
  INSERT INTO site_month_dwell SELECT tenant, site_id, month, minute, count(*) FROM located GROUP BY site_id, month, minute;
  DROP TABLE located;
END
$$;
GRANT EXECUTE ON FUNCTION rebuild_tenant_rollups(text) TO revisit_reporting;

-- The visits already stored get their rollups (in UTC until reports name their sites' zones).
ALTER TABLE visits NO FORCE ROW LEVEL SECURITY;
SELECT rebuild_tenant_rollups(tenant_id) FROM (SELECT DISTINCT tenant_id FROM visits) AS tenants;
ALTER TABLE visits FORCE ROW LEVEL SECURITY;
