#!/usr/bin/env python3
"""Set a certificate bundle as Key Vault stores one, through the official Python SDK.

Usage: set_certificate.py path/to/emulator.env NAME CONTENT_TYPE
The bundle is read from standard input (never from argv): PEM text for
application/x-pem-file, base64 PKCS#12 for application/x-pkcs12. Prints the new version and
checks that the content type reads back from get, the listing and the versions listing.
Exits 0, or names the failed step and exits 1.
"""

import os
import sys

from python_sdk_check import load_env_file


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    env_path, name, content_type = os.path.abspath(argv[1]), argv[2], argv[3]
    os.environ.update(load_env_file(env_path))
    ca = os.environ["COMPOSE_SECRETS_CA_FILE"]
    os.environ.setdefault("REQUESTS_CA_BUNDLE", ca)
    from azure.identity import ManagedIdentityCredential
    from azure.keyvault.secrets import SecretClient

    client = SecretClient(
        vault_url=os.environ["AZURE_KEYVAULT_URL"],
        credential=ManagedIdentityCredential(connection_verify=ca),
        verify_challenge_resource=False,
        connection_verify=ca,
        retry_total=2,
    )
    value = sys.stdin.read()
    set_ = client.set_secret(name, value, content_type=content_type)
    version = set_.properties.version
    checks = {
        "set": set_.properties.content_type,
        "get": client.get_secret(name, version).properties.content_type,
        "list": next(p for p in client.list_properties_of_secrets() if p.name == name).content_type,
        "versions": next(
            p for p in client.list_properties_of_secret_versions(name) if p.version == version
        ).content_type,
    }
    wrong = {k: v for k, v in checks.items() if v != content_type}
    if wrong:
        print(f"set_certificate: content type not kept by {wrong}", file=sys.stderr)
        return 1
    print(version)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
