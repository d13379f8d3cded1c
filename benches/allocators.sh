#!/usr/bin/env bash
# Allocator benchmark (not a test): the same release server binary with glibc's malloc
# (2 arenas, as shipped), jemalloc and mimalloc, on the large-store scenario
# (`api_bench`, 100,000 booking resources) and the churn scenario (`mixed_bench`, a
# 10,000-event feed while bookings are written), one allocator after the other.
#
# jemalloc and mimalloc are Debian's shared libraries, preloaded into the server
# (apt-get install -y libjemalloc2 libmimalloc2.0): the same code with each allocator,
# no rebuild per allocator. The benchmarks' clients keep glibc.
# Tunables: BENCH_DATA_DIR (the API data set, generated on the first run and reused;
# default a temp dir), MIXED_OFFERINGS (100: other offerings of the mixed benchmark),
# ALLOCATORS ("glibc jemalloc mimalloc"). Prints each run's Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

ALLOCATORS=${ALLOCATORS:-"glibc jemalloc mimalloc"}
MIXED_OFFERINGS=${MIXED_OFFERINGS:-100}
LIBDIR=/usr/lib/x86_64-linux-gnu

cargo build --release --quiet --bin bookcal --example api_bench --example mixed_bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export BENCH_DATA_DIR=${BENCH_DATA_DIR:-$work/api-data}

server_for() { # prints the server command for an allocator: the binary or a wrapper
    local lib
    case "$1" in
        glibc) echo "$PWD/target/release/bookcal"; return ;;
        jemalloc) lib=$LIBDIR/libjemalloc.so.2 ;;
        mimalloc) lib=$LIBDIR/libmimalloc.so.2 ;;
        *) echo "unknown allocator $1" >&2; exit 2 ;;
    esac
    [ -e "$lib" ] || { echo "$lib missing: apt-get install -y libjemalloc2 libmimalloc2.0" >&2; exit 2; }
    printf '#!/bin/sh\nLD_PRELOAD=%s exec %s "$@"\n' "$lib" "$PWD/target/release/bookcal" > "$work/bookcal-$1"
    chmod +x "$work/bookcal-$1"
    echo "$work/bookcal-$1"
}

for scenario in api mixed; do
    for a in $ALLOCATORS; do
        echo "## $scenario, $a ($(date -u +%H:%M) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
        if [ "$scenario" = api ]; then
            BOOKCAL_BIN=$(server_for "$a") target/release/examples/api_bench
        else
            BOOKCAL_BIN=$(server_for "$a") BENCH_OFFERINGS=$MIXED_OFFERINGS \
                target/release/examples/mixed_bench
        fi
    done
done
