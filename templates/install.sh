#!/bin/sh
# Installs a function's dependencies in its handler folder, as a template's build does:
#   package.json     -> npm install --omit=dev (node_modules/ beside handler.js, where Node finds it)
#   requirements.txt -> pip install --target .python_packages (index.py puts it on sys.path)
# Usage: templates/install.sh <handler folder>
set -eu
dir=${1:?usage: templates/install.sh <handler folder>}
cd "$dir"
if [ -f package.json ]; then
  npm install --omit=dev --no-audit --no-fund
fi
# Skip pip when requirements.txt lists nothing (only comments and blank lines).
if [ -f requirements.txt ] && grep -Eqv '^[[:space:]]*(#|$)' requirements.txt; then
  python3 -m pip install --disable-pip-version-check --target .python_packages -r requirements.txt
fi
