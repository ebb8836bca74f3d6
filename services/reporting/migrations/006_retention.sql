-- Retention. Sightings older than a tenant's `sightings_days` are deleted by whole visits: the sightings of a
-- visit that ended before the cutoff go, and the visit is kept `archived` (until `visits_days`), so reports keep
-- their year-over-year view. Recomputing a person's visits from its sightings (a new sighting, a merge, a split,
-- a kind change) leaves archived visits as they are: their sightings are gone.
ALTER TABLE visits ADD COLUMN archived boolean NOT NULL DEFAULT false;
GRANT DELETE ON unidentified_sightings TO revisit_reporting;
