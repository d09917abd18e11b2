#!/bin/sh
# Installs the foreign SOAP clients the contract tests drive (tests/contract): PHP's SoapClient
# (php8.2-cli, php8.2-soap), Java JAX-WS (jaxws: wsimport and the runtime jars) and Mono for
# .NET-style clients (mono-devel: the wsdl proxy generator, mcs and mono; it pulls in
# System.Web.Services). jaxws depends on a JRE only, so default-jdk-headless is added when javac
# is missing.
# Idempotent: installs only what is missing. Never fails the build: without these packages the
# php/java/mono tests skip and say why, so a failed apt-get is a warning, not an error.
set -u

PACKAGES="php8.2-cli php8.2-soap jaxws mono-devel"
# The operator's side: the status page in a real browser, metrics scraped by a real Prometheus.
PACKAGES="$PACKAGES chromium chromium-driver prometheus"

warn() { echo "install-clients: WARNING: $*" >&2; }

missing=""
for package in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done
if ! command -v javac >/dev/null 2>&1; then
    missing="$missing default-jdk-headless"
fi
if [ -z "$missing" ]; then
    echo "install-clients: already installed: $PACKAGES"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    warn "apt-get not found; cannot install:$missing (the php/java/mono contract tests will skip)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        warn "not root and no sudo; cannot install:$missing (the php/java/mono contract tests will skip)"
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-clients: installing:$missing"
if ! $SUDO apt-get update -qq; then
    warn "apt-get update failed; trying the install with the package lists at hand"
fi
# shellcheck disable=SC2086  # $missing is a word list on purpose
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null; then
    warn "apt-get install failed for:$missing (the php/java/mono contract tests will skip)"
    exit 0
fi
echo "install-clients: installed:$missing"
exit 0
