#!/usr/bin/env bash
# Installs the Debian packages moip needs to build and test, when they are missing.
# As root it runs apt-get; otherwise it uses sudo if that works without a password, and if not
# it names the packages and stops.
set -euo pipefail

# A package counts as installed when it is, or when an installed package provides it: NodeSource's
# `nodejs` provides (and conflicts with) Debian's `npm`, which apt-get then refuses to install.
installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" && return 0
  dpkg-query -W -f='${Status}|${Provides}\n' 2>/dev/null |
    sed -n 's/^install ok installed|//p' | tr ',' '\n' | sed 's/(.*//; s/ //g' | grep -xF "$1" >/dev/null
}

missing=()
for pkg in "$@"; do
  if ! installed "$pkg"; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "moip: installing missing system packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  apt_get=(apt-get)
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  apt_get=(sudo apt-get)
else
  echo "moip: these packages are needed and I cannot install them without root:" >&2
  echo "    sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${apt_get[@]}" update -qq
"${apt_get[@]}" install -y -qq --no-install-recommends "${missing[@]}"
