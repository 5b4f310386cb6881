#!/bin/sh
# Install what `make bench` needs beyond the build/test dependencies
# (.ci/deps.sh): the peer fetchers it compares hauld with, and the
# profilers used to explain a missed target.  Idempotent: installs only
# what is missing.  Needs root and apt-get; otherwise prints the exact
# command and fails.  Not part of `make test` or CI.
set -eu

PKGS="fetchmail fdm getmail6 mpop msmtp linux-perf valgrind postfix"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
	    || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "haul bench: missing packages:$missing" >&2
	echo "haul bench: run as root: apt-get update && apt-get install -y$missing" >&2
	exit 1
fi

echo "haul bench: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# fetchmail's package script would start a system daemon: keep every
# package script from starting services (the bench runs its own copies).
prc=/usr/sbin/policy-rc.d
made_prc=0
if [ ! -e "$prc" ]; then
	printf '#!/bin/sh\nexit 101\n' > "$prc"
	chmod 755 "$prc"
	made_prc=1
fi
trap '[ "$made_prc" = 1 ] && rm -f "$prc"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
