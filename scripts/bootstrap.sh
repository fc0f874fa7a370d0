#!/usr/bin/env bash
# Make .venv/ hold the pinned dependency set (requirements-lock.txt) and this package, editable.
# Idempotent: reinstalls only when requirements-lock.txt or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python_bin=${PYTHON:-}
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python_bin=$candidate; break; fi
  done
fi
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $python_bin" >&2
  "$python_bin" -m venv .venv
fi

stamp=.venv/.text4seg-installed
want=$(cat requirements-lock.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "bootstrap: installing pinned dependencies (first run: ~3 min, ~6 GB)" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-lock.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi

# The web demo's browser test drives Debian's chromium (Playwright never downloads a browser here).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing Debian's chromium for the browser test" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "bootstrap: /usr/bin/chromium is missing and cannot be installed here; the browser test will fail (apt-get install chromium)" >&2
  fi
fi

# The synthetic corpus draws fonts and photos from Debian packages (listed in
# data_builders.synthetic.font_catalog and .photos: 128 packages, ~256 MB to download, ~424 MB
# installed). Without them it falls back to what is installed and warns which packages are missing.
corpus_pkgs=$(.venv/bin/python -c 'from data_builders.synthetic.font_catalog import DEBIAN_FONT_PACKAGES as f; from data_builders.synthetic.photos import DEBIAN_BACKGROUND_PACKAGES as b; print(" ".join((*f, *b)))')
missing_pkgs=$(for p in $corpus_pkgs; do [ -f "/var/lib/dpkg/info/$p.list" ] || echo "$p"; done | tr '\n' ' ')
if [ -n "${missing_pkgs// /}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing $(echo $missing_pkgs | wc -w) Debian font/wallpaper packages for the synthetic corpus" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing_pkgs >/dev/null
  else
    echo "bootstrap: Debian packages for the synthetic corpus are missing and cannot be installed here (the corpus uses what is installed): $missing_pkgs" >&2
  fi
fi
