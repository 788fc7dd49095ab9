#!/usr/bin/env bash
# Sets the machine up (scripts/setup.sh), then runs the aufs-style A:B demo (examples/abc-demo/run.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec bash examples/abc-demo/run.sh
