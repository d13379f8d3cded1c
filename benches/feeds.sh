#!/usr/bin/env bash
# Feed benchmark (not a test): render time for 1,000 and 10,000 events, then wrk on
# loopback against bookcal's public feed (200 and If-None-Match 304) side by side with
# nginx serving the same bytes as a static file (200 and 304 via its own ETag).
#
# Needs: wrk, nginx (Debian: apt-get install -y wrk nginx-light), curl, python3.
# Tunables: DURATION (10s), THREADS (2), CONNS (50), SIZES ("1000 10000"), ROUNDS (3).
# Each round runs the four wrk measurements back to back (bookcal 200, nginx 200,
# bookcal 304, nginx 304), so load from elsewhere on the machine hits both servers
# alike; the table shows the median of the rounds (req/s and p99 separately).
# Prints a Markdown table; nothing is written outside a temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-50}
SIZES=${SIZES:-"1000 10000"}
ROUNDS=${ROUNDS:-3}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

cargo build --release --quiet --bin bookcal --example feed_bench
BOOKCAL=target/release/bookcal
HELPER=target/release/examples/feed_bench

work=$(mktemp -d)
chmod 755 "$work" # nginx workers run as an unprivileged user when started by root
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

median() { # values...
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}

# p99 in ms from wrk's "12.34ms" / "1.20s" / "800.00us".
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
        else print v }'
}

wait_for() { # url
    for _ in $(seq 1 200); do
        curl -fs -o /dev/null "$1" && return 0
        sleep 0.05
    done
    echo "not up: $1" >&2
    return 1
}

# CPU time (clock ticks, user + system) of processes, summed: bookcal's threads are
# in its own stat; nginx's are the master's plus its workers'.
cpu_ticks() { # pids...
    local total=0 p
    for p in "$@"; do
        for q in "$p" $(pgrep -P "$p" || true); do
            [ -r "/proc/$q/stat" ] || continue
            total=$((total + $(awk '{print $14 + $15}' "/proc/$q/stat")))
        done
    done
    echo "$total"
}

# wrk summary as "req/s p99 non2xx cpu_us_per_request", from `wrk --latency` output,
# CPU measured on the server process(es) named by $SERVER_PID.
wrk_run() { # url [header]
    local out before after
    before=$(cpu_ticks "$SERVER_PID")
    if [ $# -gt 1 ]; then
        out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "$2" "$1")
    else
        out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$1")
    fi
    after=$(cpu_ticks "$SERVER_PID")
    echo "$out" >>"$work/wrk.log"
    local rps p99 non2xx requests
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx or 3xx/ {print $5}')
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    local cpu_us
    cpu_us=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
        'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    echo "${rps} ${p99} ${non2xx:-0} ${cpu_us}"
}

echo "## machine"
echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(uname -sr)"
echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency; $("$NGINX" -v 2>&1)"
echo
echo "## render (examples/feed_bench render: ical::render, and render + SHA-256 ETag)"
# shellcheck disable=SC2086
"$HELPER" render $SIZES
echo
echo "| events | body bytes | first request (cold render) | server | 200 req/s | 200 p99 | 200 server CPU/req | 304 req/s | 304 p99 | 304 server CPU/req |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for n in $SIZES; do
    data="$work/data-$n"
    offering=$("$HELPER" setup "$data" "$n" 2>/dev/null)
    port=$(free_port)
    BOOKCAL_DATA_DIR="$data" BOOKCAL_LISTEN="127.0.0.1:$port" RUST_LOG=warn \
        "$BOOKCAL" serve >"$work/bookcal-$n.log" 2>&1 &
    pids+=($!)
    bookcal_pid=$!
    wait_for "http://127.0.0.1:$port/health"
    url="http://127.0.0.1:$port/feeds/offerings/$offering.ics"
    cold=$(curl -fs -o "$work/feed-$n.ics" -w '%{time_total}' "$url")
    bytes=$(stat -c %s "$work/feed-$n.ics")
    etag=$(curl -fsI "$url" | awk 'tolower($1) == "etag:" {print $2}' | tr -d '\r')

    www="$work/www-$n"
    mkdir -p "$www" "$work/nginx-$n"
    cp "$work/feed-$n.ics" "$www/feed.ics"
    chmod -R a+rX "$www"
    nport=$(free_port)
    cat >"$work/nginx-$n/nginx.conf" <<EOF
worker_processes 2;
pid $work/nginx-$n/nginx.pid;
error_log $work/nginx-$n/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    types { text/calendar ics; }
    default_type text/calendar;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $work/nginx-$n/body;
    proxy_temp_path $work/nginx-$n/proxy;
    fastcgi_temp_path $work/nginx-$n/fastcgi;
    uwsgi_temp_path $work/nginx-$n/uwsgi;
    scgi_temp_path $work/nginx-$n/scgi;
    server {
        listen 127.0.0.1:$nport;
        root $www;
        etag on;
        add_header Cache-Control "public, max-age=300";
    }
}
EOF
    "$NGINX" -p "$work/nginx-$n" -c "$work/nginx-$n/nginx.conf" -g 'daemon off;' \
        >"$work/nginx-$n/out.log" 2>&1 &
    pids+=($!)
    nginx_pid=$!
    nurl="http://127.0.0.1:$nport/feed.ics"
    wait_for "$nurl"
    netag=$(curl -fsI "$nurl" | awk 'tolower($1) == "etag:" {print $2}' | tr -d '\r')

    declare -a b200=() b200p=() b200c=() n200=() n200p=() n200c=()
    declare -a b304=() b304p=() b304c=() n304=() n304p=() n304c=()
    for _ in $(seq 1 "$ROUNDS"); do
        SERVER_PID=$bookcal_pid
        read -r r p bad c <<<"$(wrk_run "$url")"
        [ "$bad" = 0 ] || echo "bookcal: $bad non-2xx/3xx responses" >&2
        b200+=("$r"); b200p+=("$(to_ms "$p")"); b200c+=("$c")
        SERVER_PID=$nginx_pid
        read -r r p bad c <<<"$(wrk_run "$nurl")"
        [ "$bad" = 0 ] || echo "nginx: $bad non-2xx/3xx responses" >&2
        n200+=("$r"); n200p+=("$(to_ms "$p")"); n200c+=("$c")
        SERVER_PID=$bookcal_pid
        read -r r p bad c <<<"$(wrk_run "$url" "If-None-Match: $etag")"
        b304+=("$r"); b304p+=("$(to_ms "$p")"); b304c+=("$c")
        SERVER_PID=$nginx_pid
        read -r r p bad c <<<"$(wrk_run "$nurl" "If-None-Match: $netag")"
        n304+=("$r"); n304p+=("$(to_ms "$p")"); n304c+=("$c")
    done
    # A 304 run must really be 304s.
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$url")
    ncode=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $netag" "$nurl")
    [ "$code $ncode" = "304 304" ] || echo "conditional requests answered $code / $ncode" >&2
    echo "| $n | $bytes | ${cold}s | bookcal | $(median "${b200[@]}") | $(median "${b200p[@]}") ms | $(median "${b200c[@]}") µs | $(median "${b304[@]}") | $(median "${b304p[@]}") ms | $(median "${b304c[@]}") µs |"
    echo "| $n | $bytes | - | nginx (static file) | $(median "${n200[@]}") | $(median "${n200p[@]}") ms | $(median "${n200c[@]}") µs | $(median "${n304[@]}") | $(median "${n304p[@]}") ms | $(median "${n304c[@]}") µs |"
    echo "rounds (req/s) bookcal 200: ${b200[*]}; nginx 200: ${n200[*]}; bookcal 304: ${b304[*]}; nginx 304: ${n304[*]}" >>"$work/rounds.log"

    kill "$bookcal_pid" "$nginx_pid" 2>/dev/null || true
    wait "$bookcal_pid" "$nginx_pid" 2>/dev/null || true
done
echo
echo "Per-round figures:"
sed 's/^/    /' "$work/rounds.log"
