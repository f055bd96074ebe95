#!/usr/bin/env bash
# Starts the web server, a Celery worker and Celery beat together; Ctrl-C stops all three.
set -euo pipefail
BIN=${BIN:-.venv/bin}
PORT=${PORT:-8000}
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "Stopping Tessera..."
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT
"$BIN/celery" -A config worker --loglevel=INFO --concurrency=2 & pids+=($!)
"$BIN/celery" -A config beat --loglevel=INFO & pids+=($!)
"$BIN/python" manage.py runserver "127.0.0.1:$PORT" --noreload & pids+=($!)
sleep 2
echo
echo "Tessera is running: admin at http://127.0.0.1:$PORT/admin/  API docs at http://127.0.0.1:$PORT/api/docs/"
echo "Press Ctrl-C to stop the web server, worker and beat."
wait -n "${pids[@]}"
