-- A Supabase-like platform: what a fresh `supabase start` (or a new hosted project) has before
-- the project's own migrations run, made the way Supabase makes it. Run as the cluster's
-- bootstrap superuser `supabase_admin`, in database `postgres`, with ON_ERROR_STOP.
-- supabase_like.sql (the project: its tables, policies, users and rows) runs after it.

-- Init scripts: they run as `postgres` while it is still a superuser -----------------------
CREATE ROLE postgres WITH LOGIN SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS
    PASSWORD 'fixture-postgres-pw';
SET SESSION AUTHORIZATION postgres;

CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
CREATE ROLE authenticator WITH LOGIN NOINHERIT PASSWORD 'fixture-authenticator-pw';
CREATE ROLE supabase_auth_admin WITH LOGIN NOINHERIT CREATEROLE PASSWORD 'fixture-auth-pw';
CREATE ROLE supabase_storage_admin WITH LOGIN NOINHERIT CREATEROLE
    PASSWORD 'fixture-storage-pw';
CREATE ROLE supabase_read_only_user WITH LOGIN BYPASSRLS PASSWORD 'fixture-read-only-pw';
CREATE ROLE dashboard_user WITH NOLOGIN CREATEDB CREATEROLE REPLICATION;
-- Granted by postgres: pg_auth_members records it as the grantor.
GRANT anon, authenticated, service_role TO authenticator;
GRANT pg_read_all_data TO supabase_read_only_user;
GRANT anon, authenticated, service_role TO postgres WITH ADMIN OPTION;
GRANT supabase_auth_admin, supabase_storage_admin TO postgres;

ALTER DATABASE postgres OWNER TO postgres;
GRANT ALL ON DATABASE postgres TO dashboard_user;
GRANT CONNECT ON DATABASE postgres TO anon, authenticated, service_role;
COMMENT ON DATABASE postgres IS 'Supabase-like fixture: the app''s main database';
ALTER DATABASE postgres SET "app.settings.jwt_exp" TO '3600';

-- Extensions, created by postgres: it owns them and every object they create.
CREATE SCHEMA extensions;
GRANT USAGE ON SCHEMA extensions TO anon, authenticated, service_role, dashboard_user,
    supabase_auth_admin, supabase_storage_admin;
CREATE EXTENSION pgcrypto WITH SCHEMA extensions;
CREATE EXTENSION "uuid-ossp" WITH SCHEMA extensions;
CREATE EXTENSION pg_stat_statements WITH SCHEMA extensions;
GRANT ALL ON ALL FUNCTIONS IN SCHEMA extensions TO dashboard_user;
GRANT ALL ON ALL TABLES IN SCHEMA extensions TO dashboard_user;
REVOKE EXECUTE ON FUNCTION extensions.gen_random_bytes(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION extensions.gen_random_bytes(integer)
    TO authenticated, service_role, supabase_auth_admin, supabase_storage_admin;
REVOKE ALL ON FUNCTION extensions.pg_stat_statements_reset(oid, oid, bigint) FROM postgres;
GRANT SELECT ON extensions.pg_stat_statements, extensions.pg_stat_statements_info
    TO pg_read_all_stats;

-- An event trigger of the platform: owned by postgres, which an event trigger's owner must
-- be a superuser to be.
CREATE FUNCTION extensions.log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
END $$;
CREATE EVENT TRIGGER log_ddl ON ddl_command_end EXECUTE FUNCTION extensions.log_ddl();

CREATE PUBLICATION supabase_realtime;

CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin;
CREATE SCHEMA storage AUTHORIZATION supabase_storage_admin;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role, postgres, dashboard_user,
    supabase_storage_admin;
GRANT USAGE ON SCHEMA storage TO anon, authenticated, service_role, postgres, dashboard_user;
ALTER SCHEMA public OWNER TO postgres;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
RESET SESSION AUTHORIZATION;

-- As supabase_admin, whose default privileges Supabase sets in public.
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public
    GRANT ALL ON TABLES TO anon, authenticated, service_role;
-- Supabase lets postgres set session_replication_role (supautils); PostgreSQL 15 says it so:
DO $$
BEGIN
  IF current_setting('server_version_num')::int >= 150000 THEN
    EXECUTE 'GRANT SET ON PARAMETER session_replication_role TO postgres';
  END IF;
END $$;

-- auth migrations, as GoTrue runs them ------------------------------------------------------
SET ROLE supabase_auth_admin;
CREATE TABLE auth.schema_migrations (version text PRIMARY KEY);
INSERT INTO auth.schema_migrations VALUES ('20171026211738'), ('20221208132122');
CREATE TABLE auth.users (
    id uuid PRIMARY KEY DEFAULT extensions.gen_random_uuid(),
    email text UNIQUE,
    encrypted_password text,
    raw_user_meta_data jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE auth.identities (
    id text NOT NULL,
    user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    provider text NOT NULL,
    identity_data jsonb NOT NULL,
    PRIMARY KEY (provider, id)
);
CREATE TABLE auth.refresh_tokens (
    id bigserial PRIMARY KEY,
    token text UNIQUE,
    user_id text,
    revoked boolean,
    created_at timestamptz
);
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT nullif(coalesce(current_setting('request.jwt.claim.sub', true),
                         (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')),
                '')::uuid
$$;
GRANT ALL ON ALL TABLES IN SCHEMA auth TO postgres, dashboard_user;
GRANT ALL ON ALL SEQUENCES IN SCHEMA auth TO postgres, dashboard_user;
GRANT SELECT ON auth.users TO service_role;
GRANT EXECUTE ON FUNCTION auth.uid() TO anon, authenticated, service_role, postgres,
    supabase_storage_admin;
RESET ROLE;

-- storage migrations, as the storage API runs them -------------------------------------------
SET ROLE supabase_storage_admin;
CREATE TABLE storage.migrations (id integer PRIMARY KEY, name text UNIQUE NOT NULL);
INSERT INTO storage.migrations VALUES (0, 'create-migrations-table'), (1, 'initialmigration');
CREATE TABLE storage.buckets (
    id text PRIMARY KEY,
    name text NOT NULL UNIQUE,
    public boolean DEFAULT false,
    created_at timestamptz DEFAULT now()
);
CREATE TABLE storage.objects (
    id uuid PRIMARY KEY DEFAULT extensions.gen_random_uuid(),
    bucket_id text REFERENCES storage.buckets (id),
    name text,
    owner uuid,
    metadata jsonb,
    created_at timestamptz DEFAULT now()
);
ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY;
GRANT ALL ON ALL TABLES IN SCHEMA storage TO postgres, service_role, dashboard_user;
GRANT SELECT ON ALL TABLES IN SCHEMA storage TO anon, authenticated;
RESET ROLE;

-- Supabase demotes postgres once its init scripts have run.
ALTER ROLE postgres NOSUPERUSER;
