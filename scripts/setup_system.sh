#!/usr/bin/env bash
# Debian packages some features need: bubblewrap and libseccomp for the code-verification sandbox,
# slurm-wlm and munge for the single-host SLURM test. As root with apt-get they are installed when
# missing; elsewhere (a laptop, a non-root user, no apt) this only says what is missing, and the
# features that need them say so loudly when they run. Idempotent and quiet when everything is there.
set -uo pipefail
PACKAGES=(bubblewrap libseccomp2 slurm-wlm munge)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; } \
    || echo "setup: could not install ${missing[*]}; the features that need them will warn when they run" >&2
else
  echo "setup: Debian packages not installed: ${missing[*]} (install them as root for the full sandbox" \
       "and the SLURM test; without them those features warn or skip with the reason)" >&2
fi
exit 0
