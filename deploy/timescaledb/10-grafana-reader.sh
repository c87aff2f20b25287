#!/bin/sh
# TimescaleDB init script (runs once, when the database volume is created): adds the read-only
# role Grafana uses. See grafana-reader.psql. Mounted into /docker-entrypoint-initdb.d by
# compose.yml; the image's own init scripts (000_install_timescaledb.sh, …) run before it.
psql -v ON_ERROR_STOP=1 \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v reader="${GRAFANA_DB_USER:-grafana_reader}" \
  -v reader_password="${GRAFANA_DB_PASSWORD:-grafana-reader}" \
  -v owner="$POSTGRES_USER" \
  -v schema="${TSDB_SCHEMA:-public}" \
  -v dbname="$POSTGRES_DB" \
  -f /etc/edgebot/grafana-reader.psql
