"""A nats-py client that stays logged in across token rotation and user-JWT expiry.

The callout service issues a NATS user JWT that lives at most NATS_USER_JWT_TTL and never longer
than the ServiceAccount token. At its expiry nats-server sends ``-ERR 'User Authentication
Expired'`` and closes the connection. nats-py 2.x treats every ``-ERR`` other than a stale
connection or a permissions violation as final: it *closes* the client instead of reconnecting,
whatever ``max_reconnect_attempts`` says. So a plain ``nats.connect(...)`` dies for good at the
first expiry (and likewise after an "Authorization Violation" while reconnecting).

The pattern here:

1. ``token=read_token`` -- a callable, which nats-py calls on every connect and reconnect, so the
   kubelet's rotated token file is read each time (never read the token once at start).
2. A supervisor loop: when the connection closes, make a new one (reading the token again) and set
   up its subscriptions again. ``closed_cb`` tells the loop; ``max_reconnect_attempts=-1`` still
   covers the ordinary reconnects (server restart, network blip).
3. The private inbox prefix ``_INBOX_<namespace>_<serviceaccount with . -> _>``.

Run: ``NATS_URL=nats://127.0.0.1:4222 NATS_TOKEN_FILE=/path/to/token python3 python_client.py``.
It answers requests on ``<namespace>.echo`` and sends itself one request a second, printing each
reply, until SIGTERM/SIGINT. Needs nats-py >= 2.13 (token callables); tested with 2.16.0.
"""

import asyncio
import base64
import json
import os
import signal
import sys

import nats

TOKEN_FILE = os.environ.get("NATS_TOKEN_FILE", "/var/run/secrets/nats/token")
NATS_URL = os.environ.get("NATS_URL", "nats://nats:4222")


# docs:start connect
def read_token() -> str:
    """The current projected token; called by nats-py on every (re)connect. Never raises: a token
    file missing for a moment means one refused attempt, not the end of the client."""
    try:
        with open(TOKEN_FILE) as f:
            return f.read().strip()
    except OSError as err:
        print(f"reading NATS token: {err}", file=sys.stderr, flush=True)
        return ""


def token_owner(token: str) -> tuple[str, str]:
    """Namespace and ServiceAccount from the token's claims (unverified: only to name the inbox)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    k8s = claims["kubernetes.io"]
    return k8s["namespace"], k8s["serviceaccount"]["name"]


def inbox_prefix(namespace: str, service_account: str) -> str:
    return f"_INBOX_{namespace}_{service_account.replace('.', '_')}"


async def supervise(setup, stop: asyncio.Event, retry_wait: float = 2.0) -> None:
    """Keep one live connection until ``stop``: replace it whenever nats-py closes it."""
    generation = 0
    while not stop.is_set():
        closed = asyncio.Event()

        async def on_closed() -> None:
            closed.set()

        async def on_error(err: Exception) -> None:
            print(f"nats error: {err}", file=sys.stderr, flush=True)

        try:
            namespace, service_account = token_owner(read_token())
            nc = await nats.connect(
                NATS_URL,
                token=read_token,  # a callable: read again on every connect and reconnect
                inbox_prefix=inbox_prefix(namespace, service_account).encode(),
                max_reconnect_attempts=-1,
                reconnect_time_wait=2,
                closed_cb=on_closed,
                error_cb=on_error,
                name=f"{namespace}/{service_account}",
            )
        except Exception as err:  # refused (e.g. the service is still starting) or unreachable
            print(f"connect failed: {err!r}", file=sys.stderr, flush=True)
            try:
                await asyncio.wait_for(stop.wait(), retry_wait)
            except asyncio.TimeoutError:
                pass
            continue
        generation += 1
        print(f"connected #{generation} as {namespace}/{service_account}", flush=True)
        try:
            await setup(nc, namespace)
            waiters = [asyncio.ensure_future(closed.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
        finally:
            if not nc.is_closed:
                await nc.drain()
        if not stop.is_set():
            print(f"connection #{generation} closed ({nc.last_error!r}); connecting again", flush=True)
# docs:end connect


async def main() -> None:
    namespace, service_account = token_owner(read_token())
    prefix = inbox_prefix(namespace, service_account)
    print(f"starting as {namespace}/{service_account}, inbox prefix {prefix}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def setup(nc, namespace: str) -> None:
        async def echo(msg):
            await msg.respond(b"echo: " + msg.data)

        await nc.subscribe(f"{namespace}.echo", cb=echo)

        async def ping() -> None:
            n = 0
            while not nc.is_closed:
                n += 1
                try:
                    reply = await nc.request(f"{namespace}.echo", f"ping {n}".encode(), timeout=2)
                    print(f"reply: {reply.data.decode()}", flush=True)
                except Exception as err:
                    print(f"request failed: {err!r}", file=sys.stderr, flush=True)
                await asyncio.sleep(1)

        asyncio.ensure_future(ping())

    await supervise(setup, stop)
    print("stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
