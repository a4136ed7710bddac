# Sourced by scripts/test, scripts/bench and .ci/run: installs what the suite needs when it is
# missing and it can be installed here, saying what it installs; otherwise stops with the exact
# command to run. It installs the distribution's packages only (as root with apt-get, or through
# sudo when that needs no password) and never touches a PostgreSQL server the machine runs: the
# suite starts a throwaway cluster of its own from the installed binaries.

setup_apt_updated=

# Installs Debian packages, or says how and returns 1 when it cannot.
setup_install() {
    local why=$1
    shift
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            sudo=(no)
        fi
    fi
    if [ "${sudo[0]:-}" = no ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "setup: $why needs $*, which is not installed. Install it, for example:" >&2
        echo "    sudo apt-get install $*" >&2
        return 1
    fi
    echo "setup: $why: installing $* from the distribution's packages" >&2
    if [ -z "$setup_apt_updated" ]; then
        "${sudo[@]}" apt-get update -qq
        setup_apt_updated=1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL's server binaries (initdb, pg_ctl, postgres), for the suite's throwaway cluster.
setup_postgres() {
    # openssl makes the throwaway cluster's certificates (TLS to PostgreSQL is tested).
    command -v openssl >/dev/null 2>&1 || setup_install "the test cluster's certificates" openssl || return 1
    if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
        return 0
    fi
    setup_install "the suite's throwaway PostgreSQL" postgresql
}

# python3, which picks free ports for the scripts.
setup_python() {
    command -v python3 >/dev/null 2>&1 || setup_install "the test scripts" python3
}

# The pinned buf (tools/buf/package.json) from npm, put on PATH.
setup_buf() {
    if [ ! -x tools/buf/node_modules/.bin/buf ]; then
        command -v npm >/dev/null 2>&1 || setup_install "buf (the README's buf curl example)" npm || return 1
        echo "setup: installing the pinned buf from npm into tools/buf" >&2
        npm install --prefix tools/buf --no-package-lock --no-audit --no-fund --loglevel=error >&2
    fi
    export PATH="$PWD/tools/buf/node_modules/.bin:$PATH"
}
