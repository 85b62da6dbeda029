#!/bin/sh
# One database and one login role per service, each able to reach only its own database.
# docker-compose runs it once on an empty data volume (docker-entrypoint-initdb.d); against an
# existing server run it by hand as a superuser with PGHOST/PGUSER set (docs/operations.md).
# Passwords come from KINWELL_<SERVICE>_DB_PASSWORD; none has a default.
set -eu
prefix="${KINWELL_DB_PREFIX:-kinwell_}"
for service in consent checkin recommender aggregator escalation; do
  var="KINWELL_$(echo "$service" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
  eval "password=\${$var:-}"
  if [ -z "$password" ]; then
    echo "init-databases: set $var" >&2
    exit 1
  fi
  name="${prefix}${service}"
  # psql variables quote the names and the password; nothing is pasted into SQL text.
  psql -v ON_ERROR_STOP=1 -v name="$name" -v password="$password" --no-psqlrc -q <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
done
