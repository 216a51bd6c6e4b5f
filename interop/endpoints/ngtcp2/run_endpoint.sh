#!/usr/bin/env bash
# run_endpoint.sh for ngtcp2 0.12.1 as Debian packages it (gtlsserver /
# gtlsclient, GnuTLS backend): the reference runner's endpoint contract
# mapped onto their options.  Owns only that mapping and the client's final
# check: gtlsclient exits 0 even when a download failed, so this script
# exits 1 unless every requested file is in the download directory.
#
# Environment: ROLE=client|server, TESTCASE, REQUESTS (client: space-separated
# URLs), SSLKEYLOGFILE (read by ngtcp2 itself), QLOGDIR, WWW (/www), DOWNLOADS
# (/downloads), CERTS (/certs: cert.pem, priv.key), PORT (443), SERVER (server
# bind address; "::" / "0.0.0.0" mean any).  ALPN is ignored: these binaries
# speak HTTP/3 only, so every case runs over h3 (their peer must accept h3).
# Exit 127: unsupported case.
#
# Support (S = server, C = client; "transfer" = every URL on one connection):
#   case                 S                         C
#   handshake            serve                     transfer
#   transfer             serve                     transfer
#   longrtt              serve                     transfer
#   chacha20             serve                     transfer, --ciphers ChaCha20-Poly1305 only
#   multiplexing         serve                     transfer
#   newtoken             serve, -V                 127 (gtlsclient 0.12.1 cannot read back its --token-file)
#   retry                serve, -V (Retry)         transfer
#   resumption           serve                     1st URL, then the rest: --session-file, --tp-file, no early data
#   zerortt              serve                     1st URL, then the rest in 0-RTT (--session-file, --tp-file)
#   http3                serve                     transfer
#   blackhole            serve                     transfer
#   keyupdate            serve                     transfer, --key-update=1ms (after the handshake)
#   ecn                  serve                     transfer (runner judges the marks)
#   amplificationlimit   serve (runner's big cert) transfer
#   handshakeloss        serve, timeouts 180 s     one gtlsclient per URL, in turn ("multiconnect"), timeouts 180 s
#   transferloss         serve                     transfer
#   handshakecorruption  serve, timeouts 180 s     one gtlsclient per URL, in turn, timeouts 180 s
#   transfercorruption   serve                     transfer
#   ipv6                 serve                     transfer
#   v2                   127                       127   (0.12.1 knows only the v2 draft)
#   rebind-port          serve                     transfer
#   rebind-addr          serve                     transfer
#   connectionmigration  serve, --preferred-ipv4-addr transfer (it follows preferred addresses by itself)
#                        SERVER_IP4:4434, -ipv6-
#   activemigration      serve                     transfer, --change-local-addr=100ms (ours: active migration)
#   goodput              serve                     transfer
#   crosstraffic         serve                     transfer
set -u
ROLE="${ROLE:-}"; TESTCASE="${TESTCASE:-}"
WWW="${WWW:-/www}"; DOWNLOADS="${DOWNLOADS:-/downloads}"; CERTS="${CERTS:-/certs}"
PORT="${PORT:-443}"; SERVER="${SERVER:-::}"
[ "${INTEROP_DOCKER:-}" = 1 ] && [ -f /setup.sh ] && . /setup.sh

opts=(-q)
[ -n "${QLOGDIR:-}" ] && { mkdir -p "$QLOGDIR"; opts+=(--qlog-dir="$QLOGDIR"); }
mode=one
case "$TESTCASE" in
  handshake|transfer|longrtt|multiplexing|http3|blackhole|ecn|amplificationlimit|transferloss|\
  transfercorruption|ipv6|rebind-port|rebind-addr|goodput|crosstraffic) ;;
  chacha20) opts+=(--ciphers=NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305) ;;
  retry) [ "$ROLE" = server ] && opts+=(-V) ;;
  newtoken)  # -V: Retry unless the client brings a token; gtlsclient cannot read back its --token-file
    [ "$ROLE" = server ] || { echo "ngtcp2 client: $TESTCASE unsupported"; exit 127; }
    opts+=(-V) ;;
  resumption) mode=resume ;;
  zerortt) mode=zerortt ;;
  keyupdate) [ "$ROLE" = client ] && opts+=(--key-update=1ms) ;;
  # As ngtcp2's own interop image runs these: 10 s (the default handshake
  # timeout) is short under 30 % loss each way.
  multiconnect|handshakeloss|handshakecorruption) mode=each; opts+=(--timeout=180s --handshake-timeout=180s) ;;
  connectionmigration)  # the reference gives the client "transfer"; gtlsclient follows preferred addresses
    [ "$ROLE" = server ] && opts+=("--preferred-ipv4-addr=${SERVER_IP4:-193.167.100.100}:${PREFERRED_PORT:-4434}"
                                   "--preferred-ipv6-addr=[${SERVER_IP6:-fd00:cafe:100::100}]:${PREFERRED_PORT:-4434}") ;;
  activemigration)  # ours: the harness gives the server "transfer"
    [ "$ROLE" = client ] || { echo "ngtcp2 server: $TESTCASE unsupported"; exit 127; }
    opts+=(--change-local-addr=100ms) ;;
  *) echo "ngtcp2: test case '$TESTCASE' unsupported"; exit 127 ;;
esac

case "$ROLE" in
  server)
    addr="$SERVER"; case "$addr" in ::|0.0.0.0|"") addr='*' ;; esac
    exec gtlsserver "${opts[@]}" -d "$WWW" "$addr" "$PORT" "$CERTS/priv.key" "$CERTS/cert.pem" ;;
  client) ;;
  *) echo "ROLE must be client or server, not '$ROLE'" >&2; exit 2 ;;
esac

[ "${INTEROP_DOCKER:-}" = 1 ] && [ -x /wait-for-it.sh ] && /wait-for-it.sh sim:57832 -s -t 30
mkdir -p "$DOWNLOADS"
read -r -a urls <<< "${REQUESTS:-}"
[ "${#urls[@]}" -gt 0 ] || { echo "no REQUESTS" >&2; exit 2; }
# host and port of the first URL: https://host:port/..., https://[v6]:port/...
authority="${urls[0]#*://}"; authority="${authority%%/*}"
if [[ "$authority" == \[* ]]; then
  host="${authority%%]*}"; host="${host#[}"; rest="${authority#*]}"
else
  host="${authority%%:*}"; rest="${authority#"$host"}"
fi
port="${rest#:}"; [ -n "$port" ] || port=443
sni=()
if [[ "$host" =~ ^[0-9.]+$ || "$host" == *:* ]]; then sni=(--sni=server); fi
fetch() { gtlsclient "${opts[@]}" "${sni[@]}" --exit-on-all-streams-close --download="$DOWNLOADS" "$host" "$port" "$@"; }

state="$(mktemp -d)"
case "$mode" in
  one) fetch "${urls[@]}" ;;
  each) for u in "${urls[@]}"; do fetch "$u"; done ;;
  resume|zerortt)
    keep=(--session-file="$state/session" --tp-file="$state/tp")
    [ "$mode" = resume ] && keep+=(--disable-early-data)
    fetch "${keep[@]}" "${urls[0]}"
    [ "${#urls[@]}" -gt 1 ] && fetch "${keep[@]}" "${urls[@]:1}" ;;
esac
rm -rf "$state"
missing=0
for u in "${urls[@]}"; do
  path="${u#*://*/}"; name="${path##*/}"; name="${name%%\?*}"; [ -n "$name" ] || name=index.html
  [ -f "$DOWNLOADS/$name" ] || { echo "ngtcp2 client: $u was not downloaded" >&2; missing=1; }
done
exit "$missing"
