# Sourced by scripts/test and scripts/bench: a throwaway PostgreSQL cluster started from the
# installed server binaries, durable settings left at their defaults. As root, the cluster runs as
# the `postgres` user, since initdb refuses root.

find_pg_bindir() {
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir
        return
    fi
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ]; then
            echo "$dir"
            return
        fi
    done
    if command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
    fi
}

# A throwaway certificate authority, a server certificate for 127.0.0.1 and localhost signed by
# it, and a second, unrelated authority, in $1 (owned by the server's user where needed).
make_pg_certs() {
    local dir=$1
    mkdir -p "$dir"
    (
        cd "$dir"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=referrals test CA" \
            -keyout ca.key -out ca.pem
        openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=some other CA" \
            -keyout wrong-ca.key -out wrong-ca.pem
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3 \
            -extfile server.ext -out server.pem
        chmod 600 server.key
    ) >"$dir/openssl.log" 2>&1 || { cat "$dir/openssl.log" >&2; return 1; }
}

# Starts the cluster, with TLS offered (not required) under a throwaway authority; sets
# PG_BINDIR, PG_URL (the `postgres` database as superuser), PG_CA and PG_WRONG_CA (the
# authority that signed the server's certificate, and one that did not) and defines stop_pg.
# Returns 1 when no server binaries are installed.
start_throwaway_pg() {
    PG_BINDIR=$(find_pg_bindir)
    [ -n "$PG_BINDIR" ] || return 1
    pgdir=$(mktemp -d /tmp/referrals-pg.XXXXXX)
    chmod 755 "$pgdir"
    as_pg=()
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir "$pgdir" postgres
        chown postgres "$pgdir"
        as_pg=(runuser -u postgres --)
    fi
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    stop_pg() {
        "${as_pg[@]}" "$PG_BINDIR/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$pgdir"
    }
    "${as_pg[@]}" "$PG_BINDIR/initdb" -D "$pgdir/data" -U postgres -A trust --no-sync -E UTF8 >"$pgdir/initdb.log" 2>&1 \
        || { cat "$pgdir/initdb.log" >&2; return 2; }
    make_pg_certs "$pgdir/tls" || return 2
    [ "$(id -u)" = 0 ] && chown -R postgres "$pgdir/tls"
    "${as_pg[@]}" "$PG_BINDIR/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $pgdir -c max_connections=400 -c log_line_prefix='%m [%p] %d ' -c ssl=on -c ssl_cert_file=$pgdir/tls/server.pem -c ssl_key_file=$pgdir/tls/server.key" start >/dev/null \
        || { cat "$pgdir/server.log" >&2; return 2; }
    PG_CA="$pgdir/tls/ca.pem"
    PG_WRONG_CA="$pgdir/tls/wrong-ca.pem"
    PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
    # The server's log, whose lines name their database; tests read it for notices.
    PG_LOG="$pgdir/server.log"
}

# A primary and its synchronous streaming standby, for the failover test: two more throwaway
# clusters (the primary's commits wait for the standby, `synchronous_standby_names = standby`).
# Sets PG_PAIR_URL (both hosts, libpq style, as superuser) and PG_PAIR_CTL (a script taking
# kill-primary or promote-standby) and defines stop_pg_pair. Call after start_throwaway_pg (it
# uses PG_BINDIR and as_pg).
start_replicated_pg() {
    pairdir=$(mktemp -d /tmp/referrals-pair.XXXXXX)
    chmod 755 "$pairdir"
    [ "$(id -u)" = 0 ] && chown postgres "$pairdir"
    local p1 p2
    p1=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    p2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    stop_pg_pair() {
        for node in primary standby; do
            "${as_pg[@]}" "$PG_BINDIR/pg_ctl" -D "$pairdir/$node" -m immediate stop >/dev/null 2>&1 || true
        done
        rm -rf "$pairdir"
    }
    "${as_pg[@]}" "$PG_BINDIR/initdb" -D "$pairdir/primary" -U postgres -A trust --no-sync -E UTF8 >"$pairdir/initdb.log" 2>&1 \
        || { cat "$pairdir/initdb.log" >&2; return 2; }
    "${as_pg[@]}" "$PG_BINDIR/pg_ctl" -D "$pairdir/primary" -l "$pairdir/primary.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $p1 -k $pairdir -c max_connections=100 -c wal_level=replica -c max_wal_senders=4 -c synchronous_standby_names=standby" start >/dev/null \
        || { cat "$pairdir/primary.log" >&2; return 2; }
    "${as_pg[@]}" "$PG_BINDIR/pg_basebackup" -h 127.0.0.1 -p "$p1" -U postgres -D "$pairdir/standby" -X stream \
        >"$pairdir/basebackup.log" 2>&1 || { cat "$pairdir/basebackup.log" >&2; return 2; }
    "${as_pg[@]}" touch "$pairdir/standby/standby.signal"
    local standby_options="-c listen_addresses=127.0.0.1 -p $p2 -k $pairdir -c max_connections=100 -c hot_standby=on -c primary_conninfo='host=127.0.0.1 port=$p1 user=postgres application_name=standby'"
    "${as_pg[@]}" "$PG_BINDIR/pg_ctl" -D "$pairdir/standby" -l "$pairdir/standby.log" -w -t 60 \
        -o "$standby_options" start >/dev/null \
        || { cat "$pairdir/standby.log" >&2; return 2; }
    # The standby is synchronous before anything is written.
    local tries=0
    until [ "$("${as_pg[@]}" "$PG_BINDIR/psql" -h 127.0.0.1 -p "$p1" -U postgres -Atc \
        "select count(*) from pg_stat_replication where sync_state = 'sync'" 2>/dev/null)" = 1 ]; do
        tries=$((tries + 1))
        [ "$tries" -lt 100 ] || { echo "the standby never became synchronous" >&2; cat "$pairdir/standby.log" >&2; return 2; }
        sleep 0.1
    done
    cat >"$pairdir/ctl" <<CTL
#!/usr/bin/env bash
# stop-standby, start-standby: the synchronous standby goes away (the primary's commits then
# wait for it) and comes back. kill-primary: the primary dies (pg_ctl stop -m immediate).
# promote-standby: the standby becomes the primary.
set -euo pipefail
case "\$1" in
    stop-standby) ${as_pg[*]} "$PG_BINDIR/pg_ctl" -D "$pairdir/standby" -m fast stop >/dev/null ;;
    start-standby) ${as_pg[*]} "$PG_BINDIR/pg_ctl" -D "$pairdir/standby" -l "$pairdir/standby.log" -w -t 60 -o "$standby_options" start >/dev/null ;;
    kill-primary) ${as_pg[*]} "$PG_BINDIR/pg_ctl" -D "$pairdir/primary" -m immediate stop >/dev/null ;;
    promote-standby) ${as_pg[*]} "$PG_BINDIR/pg_ctl" -D "$pairdir/standby" -w promote >/dev/null ;;
    *) echo "usage: \$0 stop-standby|start-standby|kill-primary|promote-standby" >&2; exit 2 ;;
esac
CTL
    chmod 755 "$pairdir/ctl"
    PG_PAIR_URL="postgres://postgres@127.0.0.1:$p1,127.0.0.1:$p2/postgres"
    PG_PAIR_CTL="$pairdir/ctl"
}
