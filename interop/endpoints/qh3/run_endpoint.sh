#!/usr/bin/env bash
# run_endpoint.sh for qh3 2.1.0: the same contract, cases and adapter as
# aioquic's (../aioquic/run_endpoint.sh and ../aioquic/endpoint.py --impl qh3);
# this file owns only the choice of qh3.
#
# Support (S = server, C = client): as aioquic's table, except
#   connectionmigration  127 as server; its client (a "transfer" one) never moves: qh3 leaves
#                        preferred_address inactive
#   activemigration      127 as client (as aioquic)
#   ecn                  127 (no ECN marks or counts)
#   newtoken             127 (its connect() takes no token_handler; its server issues no NEW_TOKEN)
# i.e. handshake transfer longrtt chacha20 multiplexing retry resumption zerortt
# http3 blackhole keyupdate amplificationlimit handshakeloss (multiconnect) transferloss v2
# handshakecorruption transfercorruption ipv6 rebind-port rebind-addr goodput
# crosstraffic: supported in both roles.
IMPL=qh3 exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../aioquic/run_endpoint.sh" "$@"
