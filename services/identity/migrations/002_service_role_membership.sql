-- The migrating login (the DSN's user, owner of the schema) must be able to SET ROLE to the service
-- role the pool acts as. A superuser can; another login is granted it here (on PostgreSQL 16 the
-- membership a CREATEROLE login gets by creating the role does not include SET).
DO $$
BEGIN
  IF current_user <> 'revisit_identity' AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE format('GRANT revisit_identity TO %I', current_user);
  END IF;
END
$$;
