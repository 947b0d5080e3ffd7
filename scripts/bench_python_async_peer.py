#!/usr/bin/env python3
"""The fastest peer written with the official Python SDK: the async client
(azure.keyvault.secrets.aio + azure.identity.aio, aiohttp transport), every secret
fetched with `get_secret`, CONCURRENCY at a time (as compose-secrets), each written to a
0400 file.

Usage: bench_python_async_peer.py OUTPUT_DIR NAME... (vault and credentials from the
emulator's environment: AZURE_KEYVAULT_URL, COMPOSE_SECRETS_CA_FILE,
IDENTITY_ENDPOINT, IDENTITY_HEADER). Prints nothing but a count.
"""
import asyncio
import os
import ssl
import sys

import aiohttp
from azure.core.pipeline.transport import AioHttpTransport
from azure.identity.aio import ManagedIdentityCredential
from azure.keyvault.secrets.aio import SecretClient

CONCURRENCY = 16


def write(out_dir, name, value):
    path = os.path.join(out_dir, name)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o400)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    os.replace(tmp, path)


async def run(out_dir, names):
    ca = os.environ["COMPOSE_SECRETS_CA_FILE"]
    context = ssl.create_default_context(cafile=ca)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=CONCURRENCY))
    transport = AioHttpTransport(session=session, session_owner=False)
    credential = ManagedIdentityCredential(connection_verify=ca)
    client = SecretClient(vault_url=os.environ["AZURE_KEYVAULT_URL"], credential=credential,
                          verify_challenge_resource=False, transport=transport)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(name):
        async with gate:
            secret = await client.get_secret(name)
        write(out_dir, name, secret.value)

    try:
        await asyncio.gather(*(one(n) for n in names))
    finally:
        await client.close()
        await credential.close()
        await session.close()


def main() -> int:
    out_dir, names = sys.argv[1], sys.argv[2:]
    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    asyncio.run(run(out_dir, names))
    print(f"python-async-peer: {len(names)} secrets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
