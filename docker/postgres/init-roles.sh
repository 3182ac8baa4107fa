#!/usr/bin/env bash
# Runs once, when the compose stack's PostgreSQL volume is first initialised
# (/docker-entrypoint-initdb.d). Two roles, neither a superuser (README "Database roles"):
#   riskapp_migrate  owns the database and its schema: migrations run as it
#   riskapp_app      what web, workers and beat connect as: granted table rights by
#                    `manage.py grant_app_role` after each migrate, owner of nothing
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v migrate_password="$DATABASE_MIGRATE_PASSWORD" -v app_password="$DATABASE_APP_PASSWORD" \
  -v db="$POSTGRES_DB" <<'SQL'
CREATE ROLE riskapp_migrate LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'migrate_password';
CREATE ROLE riskapp_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'app_password';
ALTER DATABASE :"db" OWNER TO riskapp_migrate;
ALTER SCHEMA public OWNER TO riskapp_migrate;
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO riskapp_app;
SQL
