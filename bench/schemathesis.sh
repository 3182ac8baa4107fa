#!/usr/bin/env bash
# Schemathesis against a real server (gunicorn, DEBUG off, its own SQLite database under
# var/schemathesis): every check, stateful links, as a senior analyst and as one user who
# is model developer and validator. Figures go to var/schemathesis-<port>/<role>.txt and the
# JUnit/JSON reports beside them. Exit status: non-zero when any server error was answered.
#   SCHEMATHESIS_EXAMPLES  cases per operation and phase (default 400: 25,000+ cases a role)
#   SCHEMATHESIS_SEED      default 20261201 (the suite's in-process run uses its own)
#   SCHEMATHESIS_PORT      default 15401
#   SCHEMATHESIS_ROLES     default "analyst developer_validator" (run one per invocation to run them in parallel)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PORT=${SCHEMATHESIS_PORT:-15401}
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-400}
SEED=${SCHEMATHESIS_SEED:-20261201}
ROLES=${SCHEMATHESIS_ROLES:-analyst developer_validator}
export VAR_DIR=$PWD/var/schemathesis-$PORT
export DEBUG=false CELERY_QUEUE_PREFIX=schemathesis-$$-
# Generous: the fuzzer is one client with a token, not a flood.
export API_THROTTLE_USER=1000000/minute TRAIN_MAX_QUEUED_PER_USER=1000000 TUNE_MAX_RUNNING_PER_USER=1000000
rm -rf "$VAR_DIR" && mkdir -p "$VAR_DIR"
$BIN/python manage.py migrate --no-input -v0
$BIN/python manage.py collectstatic --no-input -v0
$BIN/python bench/schemathesis_world.py > "$VAR_DIR/world.json"
$BIN/gunicorn riskapp.wsgi:application -b 127.0.0.1:$PORT -w 2 --timeout 120 \
  --access-logfile "$VAR_DIR/access.log" --access-logformat '%(s)s %(m)s %(U)s' \
  --error-logfile "$VAR_DIR/gunicorn.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 1; done
# The schema is fetched once, with time to spare (generating it takes seconds on a loaded machine;
# Schemathesis gives a URL ten).
curl -sf --max-time 300 "http://127.0.0.1:$PORT/api/v1/schema/?format=json" -o "$VAR_DIR/schema.json"
status=0
for role in $ROLES; do
  before=$(wc -l < "$VAR_DIR/access.log")
  key=$($BIN/python -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$VAR_DIR/world.json" $role)
  set +e
  $BIN/schemathesis run "$VAR_DIR/schema.json" --url "http://127.0.0.1:$PORT" \
    --checks all --phases examples,coverage,fuzzing,stateful --max-examples "$EXAMPLES" --seed "$SEED" \
    --header "Authorization: Token $key" --workers 2 --no-color --request-timeout 60 \
    --continue-on-failure --suppress-health-check all --generation-database none \
    --report junit,ndjson --report-dir "$VAR_DIR/report-$role" > "$VAR_DIR/$role.txt" 2>&1
  set -e
  tail -40 "$VAR_DIR/$role.txt"
  # The acceptance figures, from the server's own access log: requests answered, and 5xx among them.
  tail -n +"$((before + 1))" "$VAR_DIR/access.log" > "$VAR_DIR/access-$role.log"
  # Only lines that start with a status: a fuzzed path with a newline in it continues on the next line.
  requests=$(grep -cE '^[1-5][0-9]{2} ' "$VAR_DIR/access-$role.log" || true)
  server_errors=$(grep -cE '^5[0-9]{2} ' "$VAR_DIR/access-$role.log" || true)
  echo "$role: requests=$requests server_errors=$server_errors statuses: $(grep -oE '^[1-5][0-9]{2} ' "$VAR_DIR/access-$role.log" | sort | uniq -c | tr -s ' \n' ' ')"
  grep -E '^5[0-9]{2} ' "$VAR_DIR/access-$role.log" | sort | uniq -c | head -20
  [ "$server_errors" -eq 0 ] || status=1
done
grep -c "Internal Server Error\|Traceback" "$VAR_DIR/gunicorn.log" || true
exit $status
