#!/bin/sh
# deps.sh: install the Debian packages cellblock needs, only those missing.
set -e
PKGS="build-essential pkg-config libczmq-dev libzmq3-dev libjansson-dev
libsodium-dev libseccomp-dev python3-ipython python3-jupyter-client
python3-dill python3-numpy python3-pandas python3-matplotlib
python3-matplotlib-inline python3-pytest python3-pexpect python3-nbclient
python3-nbformat python3-jedi python3-jupyter-kernel-test python3-ipykernel
jupyter-console mandoc tmux procps curl jq
clang libclang-rt-14-dev
debhelper dpkg-dev lintian systemd man-db python3-prometheus-client python3-zmq
util-linux iproute2 openssl python3-pip python3-requests
libmicrohttpd-dev libwslay-dev libgnutls28-dev python3-websocket
python3-notebook python3-jupyter-server python3-nbclassic chromium nodejs
fonts-dejavu-core"
missing=""

# The npm clients the tests drive, pinned by tests/js/package-lock.json:
# installed when node_modules is missing or older than the lockfile.
npm_ci() {
	js=$(dirname "$0")/js
	[ -f "$js/package-lock.json" ] || return 0
	if [ ! -f "$js/node_modules/.package-lock.json" ] ||
	    [ "$js/package-lock.json" -nt "$js/node_modules/.package-lock.json" ]; then
		echo "deps: npm ci in $js"
		(cd "$js" && npm ci --no-audit --no-fund --ignore-scripts)
	fi
}
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
	    missing="$missing $p"
done
# npm comes with nodesource's nodejs; Debian's own nodejs needs the npm package.
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && { npm_ci; exit 0; }
echo "deps: installing:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "deps: not root; install these with apt-get:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
apt-get install -y -qq $missing
npm_ci
