#!/usr/bin/env python3
"""Slow clients and probes for scripts/slow_clients.sh (issue 10, finding 1). Standard library only.

  slow  --port P --connections N --duration S
        Holds N connections that each send a request line, then one header line every
        --interval s (never the blank line that ends the head). A connection the server
        closes is counted as cut and opened again at once, as an attacker would. Prints one
        JSON line: connections opened, cut, connect failures, the most held at once.
  probe --port P --credentials FILE --duration S
        Every --every s, on fresh connections: GET /healthz and a signed POST
        /v1/partner/actions/submit (unique idempotency keys). A probe fails on a non-200 or
        no answer within --timeout s. Prints one JSON line: counts, failures, max/p99 ms.

Every loop is bounded by --duration; connections stop with the script.
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import random
import time
import uuid


async def slow_connection(port, interval, deadline, stats):
    """One slow client: reconnects when cut, until the deadline."""
    while time.monotonic() < deadline:
        try:
            # A random loopback source address per attempt: the server closes first, so its
            # TIME_WAIT entries would otherwise collide with reconnects from one address pair.
            source = (f"127.0.{random.randint(1, 254)}.{random.randint(1, 254)}", 0)
            connecting = asyncio.open_connection("127.0.0.1", port, local_addr=source)
            reader, writer = await asyncio.wait_for(connecting, 10)
        except (OSError, asyncio.TimeoutError) as error:
            stats["connect_failures"] += 1
            reason = getattr(error, "strerror", None) or type(error).__name__
            stats["connect_errors"][reason] = stats["connect_errors"].get(reason, 0) + 1
            await asyncio.sleep(0.1)  # the backlog is full: retry soon, not in a tight loop
            continue
        stats["opened"] += 1
        stats["open"] += 1
        stats["open_max"] = max(stats["open_max"], stats["open"])
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nhost: slow\r\n")
            line = 0
            while time.monotonic() < deadline:
                try:
                    data = await asyncio.wait_for(reader.read(1024), interval)
                except asyncio.TimeoutError:
                    line += 1
                    writer.write(f"x-slow-{line}: 1\r\n".encode())
                    await writer.drain()
                    continue
                if not data:
                    stats["cut"] += 1
                    break
                stats["answered"] += 1  # never expected: the head is never complete
        except OSError:
            stats["cut"] += 1
        finally:
            stats["open"] -= 1
            writer.close()


async def run_slow(args):
    deadline = time.monotonic() + args.duration
    stats = {"opened": 0, "open": 0, "open_max": 0, "cut": 0, "connect_failures": 0, "connect_errors": {}, "answered": 0}
    tasks = []
    for index in range(args.connections):
        tasks.append(asyncio.create_task(slow_connection(args.port, args.interval, deadline, stats)))
        if index % 500 == 499:
            await asyncio.sleep(0.05)  # ramp up: a SYN flood is not the case under test
    await asyncio.gather(*tasks, return_exceptions=True)
    del stats["open"]
    print(json.dumps({"role": "slow", "connections": args.connections, **stats}), flush=True)


def signed_submit(credentials, body):
    timestamp = str(int(time.time()))
    path = "/v1/partner/actions/submit"
    payload = timestamp + "POST" + path + hashlib.sha256(body).hexdigest()
    signature = hmac.new(credentials["hmacSecret"].encode(), payload.encode(), hashlib.sha256).hexdigest()
    head = (
        f"POST {path} HTTP/1.1\r\nhost: probe\r\nconnection: close\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nx-partner-key: {credentials['secretKey']}\r\n"
        f"x-timestamp: {timestamp}\r\nx-signature: {signature}\r\n\r\n"
    )
    return head.encode() + body


async def probe_once(port, request, timeout):
    """Connects, sends, reads the answer to the end; answers (status, ms)."""
    started = time.monotonic()

    async def exchange():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request)
            await writer.drain()
            answer = await reader.read()  # `connection: close`: the server closes after it
        finally:
            writer.close()
        return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0

    try:
        status = await asyncio.wait_for(exchange(), timeout)
    except (OSError, asyncio.TimeoutError, ValueError, IndexError):
        status = 0
    return status, (time.monotonic() - started) * 1000


async def run_probe(args):
    with open(args.credentials) as file:
        credentials = json.load(file)
    deadline = time.monotonic() + args.duration
    results = {"healthz": [], "submit": []}
    failures = {"healthz": 0, "submit": 0}
    pending = []

    async def record(kind, request):
        status, ms = await probe_once(args.port, request, args.timeout)
        results[kind].append(ms)
        if status != 200:
            failures[kind] += 1

    while time.monotonic() < deadline:
        health = b"GET /healthz HTTP/1.1\r\nhost: probe\r\nconnection: close\r\n\r\n"
        body = json.dumps(
            {
                "idempotencyKey": f"probe-{uuid.uuid4().hex}",
                "actionType": "PURCHASE",
                "amount": 1,
                "currency": "USD",
                "stakeholders": [{"stakeholderTypeCode": "CUSTOMER", "partnerUserId": "probe_user"}],
            },
            separators=(",", ":"),
        ).encode()
        pending.append(asyncio.create_task(record("healthz", health)))
        pending.append(asyncio.create_task(record("submit", signed_submit(credentials, body))))
        await asyncio.sleep(args.every)
    await asyncio.gather(*pending)
    summary = {"role": "probe"}
    for kind, latencies in results.items():
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else None
        summary[kind] = {
            "probes": len(latencies),
            "failures": failures[kind],
            "max_ms": round(latencies[-1], 1) if latencies else None,
            "p99_ms": round(p99, 1) if p99 is not None else None,
            "p50_ms": round(latencies[len(latencies) // 2], 1) if latencies else None,
            "over_1s": sum(1 for ms in latencies if ms > 1000),
        }
    print(json.dumps(summary), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=["slow", "probe"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds, the bound on every loop")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between a slow client's header lines")
    parser.add_argument("--credentials", help="the demo partner's credentials (probe)")
    parser.add_argument("--every", type=float, default=0.25, help="seconds between probes")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds before a probe counts as failed")
    args = parser.parse_args()
    asyncio.run(run_slow(args) if args.role == "slow" else run_probe(args))


if __name__ == "__main__":
    main()
