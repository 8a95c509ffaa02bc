# Shared by the benchmark scripts (sourced, not run): fresh throwaway secrets for the
# servers they start, quiet logs, progress lines, and a wait for a server to answer.

export REWARD_ADMIN_TOKEN="bench-admin-token-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export REWARD_MASTER_KEY="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export REWARD_LOG=warn

say() { printf '\n==> %s\n' "$*" >&2; }

wait_for_health() { # port
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$1/healthz" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "server on port $1 did not come up" >&2
    return 1
}

need_bench() { # path of the reward-bench binary (loadgen, webhook-sink, hello-server)
    [ -x "$1" ] && return 0
    echo "no reward-bench binary at $1: build it (cargo build --release -p reward-bench) or set BENCH" >&2
    exit 2
}
