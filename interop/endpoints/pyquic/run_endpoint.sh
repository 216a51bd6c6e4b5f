#!/usr/bin/env bash
# run_endpoint.sh for pyquic: the reference runner's endpoint contract mapped
# onto pyquic's own commands, `python -m pyquic.server` and
# `python -m pyquic.client`.  Owns only the mapping TESTCASE -> options.
#
# Environment: ROLE=client|server, TESTCASE, REQUESTS (client: space-separated
# URLs), SSLKEYLOGFILE, QLOGDIR, WWW (/www), DOWNLOADS (/downloads), CERTS
# (/certs: cert.pem, priv.key), PORT (443), SERVER (server bind address, "::"
# takes IPv4 too), SERVER_IP4 / SERVER_IP6 (the server's addresses, for its
# preferred addresses; the reference's by default), PREFERRED_PORT (4434), PYTHON (python3), ALPN (client: overrides the ALPN the case
# picks, e.g. h3 against an h3-only server such as ngtcp2).  Exit 127:
# unsupported case; otherwise the command's status (0 = every file fetched).
#
# Support (S = server, C = client; "transfer" = every URL on one connection):
#   case                 S                         C
#   handshake            serve                     transfer
#   transfer             serve                     transfer
#   longrtt              serve                     transfer
#   chacha20             serve                     transfer, --cipher TLS_CHACHA20_POLY1305_SHA256
#   multiplexing         serve                     transfer
#   retry                serve, --retry always     transfer
#   resumption           serve (tickets)           1st URL, then the rest with --resume FILE
#   zerortt              serve (0-RTT on)          1st URL, then the rest with --resume FILE --0rtt
#   newtoken             serve, --retry always     1st URL, then the rest with --resume FILE (it keeps the NEW_TOKEN)
#   http3                serve                     transfer, --alpn h3
#   blackhole            serve                     transfer
#   keyupdate            serve                     transfer, --key-update
#   ecn                  serve                     transfer (ECT(0) marks and ACK_ECN counts by default)
#   amplificationlimit   serve (runner's big cert) transfer
#   handshakeloss        serve, timeouts 180 s     one connection per URL, in turn (endpoint.py),
#                                                  timeouts 180 s; the reference names it "multiconnect"
#   transferloss         serve                     transfer
#   handshakecorruption  serve, timeouts 180 s     one connection per URL, in turn (endpoint.py), 180 s
#   transfercorruption   serve                     transfer
#   ipv6                 serve                     transfer
#   v2                   serve, prefer v2          transfer: first packet v1, v2 offered first (RFC 9368)
#   rebind-port          serve                     transfer
#   rebind-addr          serve                     transfer
#   connectionmigration  serve, --preferred-address transfer (it moves to the preferred address by itself)
#                        SERVER_IP4:4434 and
#                        [SERVER_IP6]:4434
#   activemigration      serve                     transfer, --migrate (a new local address mid-transfer); ours,
#                                                  the reference's first version of connectionmigration
#   goodput              serve                     transfer
#   crosstraffic         serve                     transfer
# The server answers hq-interop and h3 on one port (the client's ALPN picks).
# The client is the CLI except in the one-connection-per-URL cases, where it is
# endpoint.py (same options, on pyquic's public API).
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"
ROLE="${ROLE:-}"; TESTCASE="${TESTCASE:-}"
WWW="${WWW:-/www}"; DOWNLOADS="${DOWNLOADS:-/downloads}"; CERTS="${CERTS:-/certs}"
PORT="${PORT:-443}"; SERVER="${SERVER:-::}"
[ "${INTEROP_DOCKER:-}" = 1 ] && [ -f /setup.sh ] && . /setup.sh
# From a checkout (no pip install): pyquic and tls are three levels up.
if [ -d "$HERE/../../../pyquic" ]; then
  export PYTHONPATH="$(cd "$HERE/../../.." && pwd)${PYTHONPATH:+:$PYTHONPATH}"
fi

common=()
timeouts=()
[ -n "${SSLKEYLOGFILE:-}" ] && common+=(--keylog "$SSLKEYLOGFILE")
[ -n "${QLOGDIR:-}" ] && common+=(--qlog-dir "$QLOGDIR")
alpn=hq-interop; retry=never; opts=(); server_opts=(); mode=one
case "$TESTCASE" in
  handshake|transfer|longrtt|multiplexing|blackhole|amplificationlimit|transferloss|\
  transfercorruption|ipv6|rebind-port|rebind-addr|goodput|crosstraffic|ecn) ;;
  chacha20) opts+=(--cipher TLS_CHACHA20_POLY1305_SHA256) ;;
  retry) retry=always ;;
  resumption) mode=resume ;;
  newtoken) mode=resume; retry=always ;;  # the client's --resume file keeps the token; the server wants one
  zerortt) mode=zerortt ;;
  http3) alpn=h3 ;;
  keyupdate) opts+=(--key-update) ;;
  v2) opts+=(--version v1 --prefer-version v2); server_opts+=(--prefer-version v2) ;;
  connectionmigration)  # the reference gives the client "transfer"; it follows the preferred address anyway
    server_opts+=(--preferred-address "${SERVER_IP4:-193.167.100.100}:${PREFERRED_PORT:-4434}"
                  --preferred-address "[${SERVER_IP6:-fd00:cafe:100::100}]:${PREFERRED_PORT:-4434}") ;;
  activemigration)  # ours: the harness gives the server "transfer"
    [ "$ROLE" = client ] || { echo "pyquic server: $TESTCASE unsupported"; exit 127; }
    opts+=(--migrate) ;;
  # 180 s timeouts, as ngtcp2's interop image uses: under 30 % loss each way a
  # ClientHello of two datagrams (an ML-KEM share) may need many PTOs.
  multiconnect|handshakeloss|handshakecorruption) mode=each; timeouts=(--idle-timeout 180 --handshake-timeout 180) ;;
  *) echo "pyquic: test case '$TESTCASE' unsupported"; exit 127 ;;
esac

case "$ROLE" in
  server)
    mkdir -p "$WWW"
    exec "$PY" -m pyquic.server "${common[@]}" "${timeouts[@]}" --root "$WWW" --host "$SERVER" --port "$PORT" \
      --cert "$CERTS/cert.pem" --key "$CERTS/priv.key" --retry "$retry" --grace 1 "${server_opts[@]}" ;;
  client) ;;
  *) echo "ROLE must be client or server, not '$ROLE'" >&2; exit 2 ;;
esac

[ "${INTEROP_DOCKER:-}" = 1 ] && [ -x /wait-for-it.sh ] && /wait-for-it.sh sim:57832 -s -t 30
mkdir -p "$DOWNLOADS"
read -r -a urls <<< "${REQUESTS:-}"
[ "${#urls[@]}" -gt 0 ] || { echo "no REQUESTS" >&2; exit 2; }
fetch() { "$PY" -m pyquic.client "${common[@]}" "${opts[@]}" --alpn "${ALPN:-$alpn}" -k -o "$DOWNLOADS" "$@"; }
case "$mode" in
  one) fetch "${urls[@]}"; exit $? ;;
  each)  # the CLI puts all URLs of one host on one connection: endpoint.py does one each
    "$PY" "$HERE/endpoint.py" "${common[@]}" --timeout 180 --alpn "${ALPN:-$alpn}" -o "$DOWNLOADS" "${urls[@]}"; exit $? ;;
  resume|zerortt)
    tickets="$(mktemp -d)/tickets.json"
    fetch --resume "$tickets" "${urls[0]}" || exit 1
    [ "${#urls[@]}" -gt 1 ] || exit 0
    early=(); [ "$mode" = zerortt ] && early=(--0rtt)
    fetch --resume "$tickets" "${early[@]}" "${urls[@]:1}" || exit 1 ;;
esac
exit 0
