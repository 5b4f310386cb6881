#!/bin/sh
# Install the Debian packages haul needs to build, test and run its demo.
# Idempotent: installs only what is missing. Needs root and apt-get;
# otherwise prints the exact command and fails.
set -eu

PKGS="build-essential clang pkg-config openssl libssl-dev libconfuse-dev
libevent-dev libsqlite3-dev libmilter-dev libcriterion-dev miltertest
dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd postfix sqlite3
valgrind python3 groff-base fetchmail"

# hauld and haul-milter refuse to run as root without a user to become:
# the tests and the demo, run as root, give them this one.
if [ "$(id -u)" = 0 ] && ! getent passwd haul >/dev/null 2>&1; then
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
	    --shell /usr/sbin/nologin haul
fi

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
	    || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "haul: missing packages:$missing" >&2
	echo "haul: run as root: apt-get update && apt-get install -y$missing" >&2
	exit 1
fi

echo "haul: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# Postfix must install without a dialog and without a system instance;
# package scripts must not start the system Dovecot/Postfix services.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
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
