#!/usr/bin/env bash
# run_endpoint.sh for aioquic 1.7.2 (and, with IMPL=qh3, for qh3 2.1.0: see
# ../qh3/run_endpoint.sh): the reference runner's endpoint contract on top of
# endpoint.py beside this file.  Owns only the mapping TESTCASE -> options.
#
# Environment: ROLE=client|server, TESTCASE, REQUESTS (client: space-separated
# URLs), SSLKEYLOGFILE, QLOGDIR, WWW (/www), DOWNLOADS (/downloads), CERTS
# (/certs: cert.pem, priv.key), PORT (443), SERVER (server bind address, "::"),
# PYTHON (python3), ALPN (client: overrides the ALPN the case picks, e.g. h3
# against an h3-only server such as ngtcp2).  Exit 127: unsupported case.
#
# Support (S = server, C = client; "transfer" = fetch all URLs on one connection):
#   case                 S                         C
#   handshake            serve                     transfer
#   transfer             serve                     transfer
#   longrtt              serve                     transfer
#   chacha20             serve                     transfer, ChaCha20-Poly1305 only
#   multiplexing         serve                     transfer
#   retry                serve, Retry always       transfer
#   resumption           serve (tickets)           1st URL, then the rest resuming
#   zerortt              serve (tickets, 0-RTT)    1st URL, then the rest in 0-RTT
#   newtoken             127 (issues no NEW_TOKEN) aioquic: 1st URL, then the rest with its NEW_TOKEN token; qh3: 127
#   http3                serve                     transfer over h3
#   blackhole            serve                     transfer
#   keyupdate            serve                     key update once confirmed, then transfer
#   ecn                  127                       127   (neither aioquic nor qh3 marks or counts ECN)
#   amplificationlimit   serve (runner's big cert) transfer
#   handshakeloss        serve                     one connection per URL, in turn ("multiconnect")
#   transferloss         serve                     transfer
#   handshakecorruption  serve                     one connection per URL, in turn
#   transfercorruption   serve                     transfer
#   ipv6                 serve                     transfer
#   v2                   prefer v2                 v1 Initial offering v2 (both libraries)
#   rebind-port          serve                     transfer
#   rebind-addr          serve                     transfer
#   connectionmigration  127 (no preferred address transfer (aioquic 1.7 moves to a server's preferred
#                        to offer)                 address by itself)
#   activemigration      serve (as transfer)       127 (ours; the adapter cannot move its client to a new address)
#   goodput              serve                     transfer
#   crosstraffic         serve                     transfer
# Servers accept both hq-interop and h3, whatever the case.
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMPL="${IMPL:-aioquic}"
PY="${PYTHON:-python3}"
ROLE="${ROLE:-}"; TESTCASE="${TESTCASE:-}"
WWW="${WWW:-/www}"; DOWNLOADS="${DOWNLOADS:-/downloads}"; CERTS="${CERTS:-/certs}"
PORT="${PORT:-443}"; SERVER="${SERVER:-::}"
[ "${INTEROP_DOCKER:-}" = 1 ] && [ -f /setup.sh ] && . /setup.sh

args=(--impl "$IMPL" --role "$ROLE")
[ -n "${SSLKEYLOGFILE:-}" ] && args+=(--keylog "$SSLKEYLOGFILE")
[ -n "${QLOGDIR:-}" ] && args+=(--qlog-dir "$QLOGDIR")
alpn=hq-interop
case "$TESTCASE" in
  handshake|transfer|longrtt|multiplexing|blackhole|amplificationlimit|transferloss|\
  transfercorruption|ipv6|rebind-port|rebind-addr|goodput|crosstraffic) ;;
  chacha20) args+=(--chacha20) ;;
  retry) [ "$ROLE" = server ] && args+=(--retry) ;;
  resumption) args+=(--mode resume) ;;
  zerortt) args+=(--mode zerortt) ;;
  newtoken)  # aioquic's client keeps the first connection's NEW_TOKEN token (qh3's connect()
    # takes no token_handler); neither server issues one
    { [ "$ROLE" = client ] && [ "$IMPL" = aioquic ]; } || { echo "$IMPL $ROLE: $TESTCASE unsupported"; exit 127; }
    args+=(--mode newtoken) ;;
  http3) alpn=h3 ;;
  keyupdate) [ "$ROLE" = client ] && args+=(--key-update) ;;
  multiconnect|handshakeloss|handshakecorruption) args+=(--mode each) ;;
  v2) args+=(--v2) ;;
  *) echo "$IMPL: test case '$TESTCASE' unsupported"; exit 127 ;;
esac

case "$ROLE" in
  server)
    exec "$PY" "$HERE/endpoint.py" "${args[@]}" --alpn hq-interop --alpn h3 \
      --host "$SERVER" --port "$PORT" --www "$WWW" --certs "$CERTS" ;;
  client)
    [ "${INTEROP_DOCKER:-}" = 1 ] && [ -x /wait-for-it.sh ] && /wait-for-it.sh sim:57832 -s -t 30
    # shellcheck disable=SC2086  # REQUESTS is a space-separated list
    exec "$PY" "$HERE/endpoint.py" "${args[@]}" --alpn "${ALPN:-$alpn}" --downloads "$DOWNLOADS" $REQUESTS ;;
  *) echo "ROLE must be client or server, not '$ROLE'" >&2; exit 2 ;;
esac
