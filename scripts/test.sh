#!/usr/bin/env bash
# Runs berth's tests with node:test. Usage: scripts/test.sh [unit|integration|all] [file...]
#   unit         src/**/*.test.ts (pure, fast, no root needed)
#   integration  test/integration/*.test.ts (real registry, skopeo, umoci, kernel mounts; root)
#   all          both (default)
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-all}; shift || true
if [ $# -gt 0 ]; then files=("$@")
else
  files=()
  case $kind in
    unit) mapfile -t files < <(find src -name '*.test.ts' | sort) ;;
    integration) mapfile -t files < <(find test/integration -name '*.test.ts' | sort) ;;
    all) mapfile -t files < <( { find src -name '*.test.ts'; find test/integration -name '*.test.ts'; } | sort) ;;
    *) echo "usage: $0 [unit|integration|all] [file...]" >&2; exit 2 ;;
  esac
fi
[ ${#files[@]} -gt 0 ] || { echo "no test files" >&2; exit 1; }
# As root with systemd-nspawn present, also check the translators against the real nspawn.
if [ "$(id -u)" = 0 ] && command -v systemd-nspawn >/dev/null; then export BERTH_TEST_NSPAWN=${BERTH_TEST_NSPAWN:-1}; fi
if [ "$kind" = all ] && [ $# -eq 0 ]; then
  echo "== type check (tsc --noEmit)" >&2
  npx tsc --noEmit -p .
fi
exec node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-2}" --test-reporter=spec "${files[@]}"
