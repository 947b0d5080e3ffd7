#!/usr/bin/env python3
"""The peer compose-secrets is measured against: the seeds' get_secrets.sh pattern
(one `secret show` per secret, in sequence) written with the official Python SDK
(azure-identity + azure-keyvault-secrets), writing each value to a 0400 file.

Usage: bench_python_peer.py OUTPUT_DIR NAME... (vault and credentials from the
emulator's environment: AZURE_KEYVAULT_URL, COMPOSE_SECRETS_CA_FILE,
IDENTITY_ENDPOINT, IDENTITY_HEADER). Prints nothing but a count.
"""
import os
import sys

from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient


def main() -> int:
    out_dir, names = sys.argv[1], sys.argv[2:]
    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    ca = os.environ["COMPOSE_SECRETS_CA_FILE"]
    credential = ManagedIdentityCredential(connection_verify=ca)
    client = SecretClient(
        vault_url=os.environ["AZURE_KEYVAULT_URL"],
        credential=credential,
        verify_challenge_resource=False,
        connection_verify=ca,
    )
    for name in names:
        value = client.get_secret(name).value
        path = os.path.join(out_dir, name)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o400)
        with os.fdopen(fd, "w") as f:
            f.write(value)
        os.replace(tmp, path)
    print(f"python-peer: {len(names)} secrets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
