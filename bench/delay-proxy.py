#!/usr/bin/env python3
"""delay-proxy.py — a TCP proxy that adds latency, for pull benchmarks (python3 stdlib only).

    delay-proxy.py LISTEN_PORT TARGET_PORT DELAY_MS MAX_SECONDS

Accepts on 127.0.0.1:LISTEN_PORT and forwards each connection to 127.0.0.1:TARGET_PORT.
Every chunk read from either side is delivered to the other side DELAY_MS after it was read,
in order, so a request/response round trip costs 2 × DELAY_MS more than on plain loopback.
It is a delay line, not a bandwidth limit: chunks in flight overlap, as on a long fat link.
A new connection also waits one round trip (2 × DELAY_MS) before its first bytes go on,
as a TCP handshake over such a link would.

It exits by itself after MAX_SECONDS (so it never outlives a benchmark that died), or on
SIGTERM/SIGINT. It prints "listening on PORT" once ready (LISTEN_PORT 0 picks a free port).
"""
import asyncio
import signal
import sys

CHUNK = 256 * 1024
STATS = {"connections": 0, "bytes_up": 0, "bytes_down": 0}


async def pipe(reader, writer, delay, counter):
    """Copy reader → writer, each chunk delivered `delay` seconds after it was read."""
    queue = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def deliver():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:  # EOF from the source: half-close, as the source did
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.ensure_future(deliver())
    try:
        while True:
            data = await reader.read(CHUNK)
            if sender.done():  # the destination is gone: raise its error
                sender.result()
                return
            STATS[counter] += len(data)
            queue.put_nowait((loop.time() + delay, data or None))
            if not data:
                break
        await sender
    finally:
        if not sender.done():
            # The source failed (reset); let what is already in flight arrive, then stop.
            try:
                await asyncio.wait_for(asyncio.shield(sender), delay + 1)
            except Exception:
                sender.cancel()


async def handle(client_r, client_w, target, delay):
    STATS["connections"] += 1
    writers, tasks = [client_w], []
    try:
        await asyncio.sleep(2 * delay)  # the handshake's round trip
        up_r, up_w = await asyncio.open_connection("127.0.0.1", target)
        writers.append(up_w)
        tasks = [
            asyncio.ensure_future(pipe(client_r, up_w, delay, "bytes_up")),
            asyncio.ensure_future(pipe(up_r, client_w, delay, "bytes_down")),
        ]
        # When one direction fails (a reset: e.g. the client was killed), drop the connection.
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except (Exception, asyncio.CancelledError):
        pass  # connect failed, or the proxy is shutting down
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (Exception, asyncio.CancelledError):
                pass
        for w in writers:
            try:
                w.close()
            except Exception:
                pass


async def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    listen, target = int(sys.argv[1]), int(sys.argv[2])
    delay, max_seconds = float(sys.argv[3]) / 1000.0, float(sys.argv[4])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, target, delay), "127.0.0.1", listen, backlog=1024
    )
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {port}", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), max_seconds)
    except asyncio.TimeoutError:
        print(f"delay-proxy: max runtime {max_seconds:g} s reached, exiting", file=sys.stderr)
    server.close()
    print(
        "delay-proxy: {connections} connections, {bytes_up} bytes up, {bytes_down} bytes down".format(**STATS),
        file=sys.stderr,
    )
    # Do not wait for open connections: exiting closes them.


if __name__ == "__main__":
    asyncio.run(main())
