#!/usr/bin/env bash
# Installs everything berth needs on Debian 12 (as root), builds it, and runs its main job on
# a built-in default: a busybox image built offline, served by a local registry, pulled by
# berth into /var/lib/berth (BERTH_ROOT overrides), listed, checked and run once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm run build
exec node --import tsx scripts/demo.ts
