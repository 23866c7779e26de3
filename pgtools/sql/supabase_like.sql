-- A Supabase-like database: the role layout, schemas, grants and objects of a real project.
-- Run as the cluster's bootstrap superuser `supabase_admin`, in database `postgres`,
-- with ON_ERROR_STOP. Used by the test suite and by `dumpledger demo`.

-- Roles ------------------------------------------------------------------------------------
-- postgres starts as a superuser so it can own an event trigger, and is demoted at the end,
-- as on Supabase (where it keeps CREATEDB, CREATEROLE, REPLICATION and BYPASSRLS).
CREATE ROLE postgres WITH LOGIN SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS;
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
CREATE ROLE authenticator WITH LOGIN NOINHERIT;
CREATE ROLE supabase_auth_admin WITH LOGIN NOINHERIT CREATEROLE;
CREATE ROLE supabase_storage_admin WITH LOGIN NOINHERIT CREATEROLE;
CREATE ROLE dashboard_user WITH NOLOGIN CREATEDB CREATEROLE REPLICATION;
GRANT anon, authenticated, service_role TO authenticator;
GRANT anon, authenticated, service_role TO postgres WITH ADMIN OPTION;
GRANT supabase_auth_admin, supabase_storage_admin TO postgres;

ALTER DATABASE postgres OWNER TO postgres;
GRANT ALL ON DATABASE postgres TO dashboard_user;
GRANT CONNECT ON DATABASE postgres TO anon, authenticated, service_role;
COMMENT ON DATABASE postgres IS 'Supabase-like fixture: the app''s main database';
ALTER DATABASE postgres SET "app.settings.jwt_exp" TO '3600';

-- Schemas and extensions --------------------------------------------------------------------
CREATE SCHEMA extensions AUTHORIZATION postgres;
GRANT USAGE ON SCHEMA extensions TO anon, authenticated, service_role, dashboard_user,
    supabase_auth_admin, supabase_storage_admin;
CREATE EXTENSION pgcrypto WITH SCHEMA extensions;
CREATE EXTENSION "uuid-ossp" WITH SCHEMA extensions;

CREATE SCHEMA auth AUTHORIZATION supabase_auth_admin;
CREATE SCHEMA storage AUTHORIZATION supabase_storage_admin;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role, postgres, dashboard_user,
    supabase_storage_admin;
GRANT USAGE ON SCHEMA storage TO anon, authenticated, service_role, postgres, dashboard_user;
ALTER SCHEMA public OWNER TO postgres;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;

-- auth -------------------------------------------------------------------------------------
SET ROLE supabase_auth_admin;
CREATE TABLE auth.users (
    id uuid PRIMARY KEY DEFAULT extensions.gen_random_uuid(),
    email text UNIQUE,
    encrypted_password text,
    raw_user_meta_data jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT nullif(coalesce(current_setting('request.jwt.claim.sub', true),
                         (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')),
                '')::uuid
$$;
GRANT ALL ON auth.users TO postgres, dashboard_user;
GRANT SELECT ON auth.users TO service_role;
GRANT EXECUTE ON FUNCTION auth.uid() TO anon, authenticated, service_role, postgres,
    supabase_storage_admin;
RESET ROLE;

-- storage ----------------------------------------------------------------------------------
SET ROLE supabase_storage_admin;
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
CREATE POLICY "Owners read their objects" ON storage.objects FOR SELECT
    USING (owner = auth.uid());
GRANT ALL ON ALL TABLES IN SCHEMA storage TO postgres, service_role, dashboard_user;
GRANT SELECT ON ALL TABLES IN SCHEMA storage TO anon, authenticated;
RESET ROLE;

-- public, owned by postgres --------------------------------------------------------------------
SET ROLE postgres;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
    GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
    GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
    GRANT EXECUTE ON FUNCTIONS TO anon, authenticated, service_role;

CREATE TABLE public.profiles (
    id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
    username text UNIQUE,
    bio text,
    avatar bytea,
    settings jsonb,
    updated_at timestamptz
);
ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Profiles are viewable by everyone" ON public.profiles FOR SELECT USING (true);
CREATE POLICY "Users can update own profile" ON public.profiles FOR UPDATE
    USING (auth.uid() = id);

CREATE TABLE public.todos (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES auth.users (id),
    task text CHECK (char_length(task) > 3),
    is_complete boolean DEFAULT false,
    inserted_at timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE public.invoice_number_seq START 1000;
SELECT setval('public.invoice_number_seq', 1041);

CREATE FUNCTION public.set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END $$;
CREATE TRIGGER profiles_updated_at BEFORE UPDATE ON public.profiles
    FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

CREATE VIEW public.todo_summary AS
    SELECT user_id, count(*) AS total, count(*) FILTER (WHERE is_complete) AS done
    FROM public.todos GROUP BY user_id;

CREATE FUNCTION public.log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
END $$;
CREATE EVENT TRIGGER log_ddl ON ddl_command_end EXECUTE FUNCTION public.log_ddl();
RESET ROLE;

-- Data -------------------------------------------------------------------------------------
INSERT INTO auth.users (id, email, encrypted_password, raw_user_meta_data, created_at) VALUES
  ('00000000-0000-4000-8000-000000000001', 'zoe@example.com', 'x', '{"name": "Zoë"}',
   '2026-01-02 03:04:05+00'),
  ('00000000-0000-4000-8000-000000000002', 'kenji@example.jp', 'y', '{"name": "健二", "city": "東京"}',
   '2026-02-03 04:05:06+00'),
  ('00000000-0000-4000-8000-000000000003', 'nobody@example.org', NULL, NULL,
   '2026-03-04 05:06:07+00');

INSERT INTO public.profiles (id, username, bio, avatar, settings, updated_at) VALUES
  ('00000000-0000-4000-8000-000000000001', 'zoë', 'Ships 🚀 on Fridays', '\x00ff00deadbeef00'::bytea,
   '{"theme": "dark", "langs": ["fr", "en"], "nested": {"emoji": "🚀", "n": 1.5}}',
   '2026-01-05 00:00:00+00'),
  ('00000000-0000-4000-8000-000000000002', 'kenji', NULL, NULL,
   '{"theme": "light", "city": "東京"}', '2026-02-05 00:00:00+00'),
  ('00000000-0000-4000-8000-000000000003', 'nobody', '', '\x'::bytea, NULL, NULL);

INSERT INTO public.todos (user_id, task, is_complete, inserted_at)
SELECT ('00000000-0000-4000-8000-00000000000' || (1 + g % 3))::uuid,
       'task number ' || g || CASE WHEN g % 7 = 0 THEN ' — über wichtig' ELSE '' END,
       g % 2 = 0,
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1 hour'
FROM generate_series(1, 200) AS g;

INSERT INTO storage.buckets (id, name, public) VALUES ('avatars', 'avatars', true);
INSERT INTO storage.objects (bucket_id, name, owner, metadata) VALUES
  ('avatars', 'zoe.png', '00000000-0000-4000-8000-000000000001', '{"size": 1234}'),
  ('avatars', 'kenji.png', '00000000-0000-4000-8000-000000000002', NULL);

-- The Supabase CLI's migration history, whose newest version each backup records.
CREATE SCHEMA supabase_migrations AUTHORIZATION postgres;
CREATE TABLE supabase_migrations.schema_migrations (version text PRIMARY KEY, name text);
ALTER TABLE supabase_migrations.schema_migrations OWNER TO postgres;
INSERT INTO supabase_migrations.schema_migrations VALUES
  ('20260101120000', 'init'), ('20260315093000', 'profiles'), ('20261102181500', 'todos');

ALTER ROLE postgres NOSUPERUSER;
