#!/usr/bin/env bash
# Installs the system tools the tests talk to (real radclient, real FreeRADIUS as a peer).
# Idempotent: does nothing when every tool is already on PATH.
set -euo pipefail

need=()
command -v radclient >/dev/null 2>&1 || need+=(freeradius-utils)
command -v freeradius >/dev/null 2>&1 || need+=(freeradius)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
# LDAP first factor (real slapd + ldapadd), VPN stacks end to end (pam_radius + pamtester, OpenVPN + radiusplugin).
[ -x /usr/sbin/slapd ] || need+=(slapd)
command -v ldapadd >/dev/null 2>&1 || need+=(ldap-utils)
[ -e /lib/x86_64-linux-gnu/security/pam_radius_auth.so ] || [ -e /usr/lib/x86_64-linux-gnu/security/pam_radius_auth.so ] || compgen -G '/usr/lib/*/security/pam_radius_auth.so' >/dev/null || need+=(libpam-radius-auth)
command -v pamtester >/dev/null 2>&1 || need+=(pamtester)
[ -x /usr/sbin/openvpn ] || need+=(openvpn)
[ -e /usr/lib/openvpn/radiusplugin.so ] || need+=(openvpn-auth-radius)
# ocserv (RADIUS through radcli) and the openconnect client: test/vpn-ocserv.test.ts.
[ -x /usr/sbin/ocserv ] || need+=(ocserv)
command -v openconnect >/dev/null 2>&1 || need+=(openconnect)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# MS-CHAPv2/EAP relay (eapol_test: PEAP, EAP-TTLS through us to FreeRADIUS) and RADIUS over TLS (radsecproxy as the client).
command -v eapol_test >/dev/null 2>&1 || need+=(eapoltest)
[ -x /usr/sbin/radsecproxy ] || need+=(radsecproxy)
# docs/mobile-api.md's curl session, run by test/mobile-api-docs.test.ts.
for tool in curl jq xxd; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
# deploy/radius-mfa.service is checked with systemd-analyze verify (test/service-unit.test.ts).
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# Portal and companion-app tests: the real browser, driven by playwright-core (never `npx playwright install`).
[ -x /usr/bin/chromium ] || need+=(chromium)
# Several nodes (issue 13): private Redis and PostgreSQL instances started by test/helpers/{redis,postgres}.ts.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)

if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: missing ${need[*]}; run as root or install them: apt-get install ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# slapd's postinst would ask for a domain and an admin password: preseed it to skip its own setup (tests bring theirs).
if command -v debconf-set-selections >/dev/null 2>&1; then
  echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian package starts a system FreeRADIUS on 1812 where it can; tests and the bench start their own.
if command -v service >/dev/null 2>&1; then
  for svc in freeradius slapd openvpn ocserv radsecproxy redis-server postgresql; do service "$svc" stop >/dev/null 2>&1 || true; done
fi
