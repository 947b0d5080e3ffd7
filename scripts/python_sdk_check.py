#!/usr/bin/env python3
"""Check kv-emulator against the official Python SDK (azure-keyvault-secrets + azure-identity).

Usage: python_sdk_check.py [path/to/emulator.env]
Without an argument the variables must already be exported (`. .runtime/emulator/emulator.env`).
The client secret is read from the `client-secret` file next to emulator.env (or next to the CA).

Both real credential paths are used: ManagedIdentityCredential through the App Service
endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER) and ClientSecretCredential with the emulator as
authority. Prints "python-sdk: N operations ok" and exits 0, or names the failed step and exits 1.
Secret values are never printed.
"""

import os
import secrets
import sys
import traceback

REQUIRED = (
    "AZURE_KEYVAULT_URL",
    "COMPOSE_SECRETS_CA_FILE",
    "AZURE_TENANT_ID",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
)


class CheckFailed(Exception):
    pass


def load_env_file(path):
    values = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("export ") and "=" in line:
                key, value = line[len("export "):].split("=", 1)
                values[key] = value
    return values


def expect(condition, what):
    if not condition:
        raise CheckFailed(what)


class Checker:
    def __init__(self, env_dir):
        self.ops = 0
        self.url = os.environ["AZURE_KEYVAULT_URL"]
        self.ca = os.environ["COMPOSE_SECRETS_CA_FILE"]
        self.tenant = os.environ["AZURE_TENANT_ID"]
        self.authority = os.environ["AZURE_AUTHORITY_HOST"]
        secret_file = os.path.join(env_dir or os.path.dirname(self.ca), "client-secret")
        with open(secret_file, encoding="utf-8") as f:
            self.client_secret = f.read().strip()
        self.prefix = "py-" + secrets.token_hex(4)

    def step(self, name, fn, *args, **kwargs):
        try:
            result = fn(*args, **kwargs)
        except CheckFailed:
            raise
        except Exception as e:  # the SDK's own exception types vary by operation
            raise CheckFailed(f"{name}: {type(e).__name__}: {e}") from e
        self.ops += 1
        return result

    def expect_error(self, name, status, fn, *args, **kwargs):
        from azure.core.exceptions import HttpResponseError

        try:
            fn(*args, **kwargs)
        except HttpResponseError as e:
            expect(e.status_code == status, f"{name}: expected HTTP {status}, got {e.status_code}")
            self.ops += 1
            return e
        raise CheckFailed(f"{name}: expected HTTP {status}, but the call succeeded")

    def client(self, credential):
        from azure.keyvault.secrets import SecretClient

        return SecretClient(
            vault_url=self.url,
            credential=credential,
            verify_challenge_resource=False,
            connection_verify=self.ca,
            retry_total=2,
        )

    def managed_identity(self):
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(connection_verify=self.ca)

    def client_secret_credential(self, client_id, secret):
        from azure.identity import ClientSecretCredential

        # Instance discovery would ask the public Entra authority about this one; never leave loopback.
        return ClientSecretCredential(
            self.tenant,
            client_id,
            secret,
            authority=self.authority,
            disable_instance_discovery=True,
            connection_verify=self.ca,
        )

    def full_lifecycle(self, client, label):
        name = f"{self.prefix}-{label}"
        v1 = self.step("set v1", client.set_secret, name, "value-one", content_type="text/plain")
        expect(v1.value == "value-one", "set returns the value")
        expect(len(v1.properties.version) == 32, "32-character version")
        v2 = self.step("set v2", client.set_secret, name, "value-two", tags={"k": "v"})
        expect(v2.properties.version != v1.properties.version, "a new version per set")

        latest = self.step("get latest", client.get_secret, name)
        expect(latest.value == "value-two", "get latest returns the newest value")
        old = self.step("get version", client.get_secret, name, v1.properties.version)
        expect(old.value == "value-one", "get by version returns that version")
        expect(old.properties.content_type == "text/plain", "content type kept")

        others = [f"{name}-page-{i}" for i in range(5)]
        for other in others:
            self.step("set for paging", client.set_secret, other, "x")
        pages = self.step(
            "list (paged)",
            lambda: [list(p) for p in client.list_properties_of_secrets(max_page_size=2).by_page()],
        )
        listed = {p.name for page in pages for p in page}
        expect(len(pages) >= 3, f"maxresults=2 yields several pages, got {len(pages)}")
        expect(all(len(page) <= 2 for page in pages), "pages respect max_page_size")
        expect({name, *others} <= listed, "every secret is listed across pages")
        expect(all(p.version is None for page in pages for p in page), "list ids are version-less")

        versions = self.step(
            "list versions", lambda: list(client.list_properties_of_secret_versions(name))
        )
        expect(
            sorted(v.version for v in versions)
            == sorted([v1.properties.version, v2.properties.version]),
            "both versions are listed",
        )

        updated = self.step(
            "update properties",
            client.update_secret_properties,
            name,
            v1.properties.version,
            content_type="application/json",
            enabled=False,
        )
        expect(updated.content_type == "application/json", "update applies content type")
        expect(updated.enabled is False, "update disables the version")
        err = self.expect_error(
            "get disabled", 403, client.get_secret, name, v1.properties.version
        )
        expect(
            "disabled" in str(err.message),
            "a disabled secret is refused with the SecretDisabled message",
        )

        deleted = self.step("delete", lambda: client.begin_delete_secret(name).result())
        expect(deleted.recovery_id and deleted.recovery_id.endswith(f"/deletedsecrets/{name}"),
               "delete returns a recovery id")
        expect(deleted.scheduled_purge_date is not None, "delete returns a purge date")
        self.step("get deleted", client.get_deleted_secret, name)
        self.expect_error("set over deleted", 409, client.set_secret, name, "again")
        self.expect_error("get while deleted", 404, client.get_secret, name)

        recovered = self.step(
            "recover", lambda: client.begin_recover_deleted_secret(name).result()
        )
        expect(recovered.version == v2.properties.version, "recover restores the latest version")
        again = self.step("get recovered", client.get_secret, name)
        expect(again.value == "value-two", "recovered value intact")

        self.step("delete again", lambda: client.begin_delete_secret(name).result())
        self.step("purge", client.purge_deleted_secret, name)
        self.expect_error("get purged", 404, client.get_deleted_secret, name)
        for other in others:
            self.step("cleanup delete", lambda o=other: client.begin_delete_secret(o).result())
            self.step("cleanup purge", client.purge_deleted_secret, other)

    def run(self):
        from azure.core.exceptions import ClientAuthenticationError

        self.full_lifecycle(self.client(self.managed_identity()), "msi")
        self.full_lifecycle(
            self.client(self.client_secret_credential("python-sdk-check", self.client_secret)),
            "entra",
        )
        wrong = self.client(self.client_secret_credential("python-sdk-check", "wrong-secret"))
        try:
            wrong.get_secret("anything")
        except ClientAuthenticationError:
            self.ops += 1
        else:
            raise CheckFailed("a wrong client secret must not authenticate")


def main(argv):
    env_dir = None
    if len(argv) > 1:
        env_path = os.path.abspath(argv[1])
        os.environ.update(load_env_file(env_path))
        env_dir = os.path.dirname(env_path)
    missing = [k for k in REQUIRED if not os.environ.get(k)]
    if missing:
        print(f"python-sdk: missing {', '.join(missing)}: pass emulator.env or export it", file=sys.stderr)
        return 2
    # requests (used for the token endpoints too) must trust the emulator CA.
    os.environ.setdefault("REQUESTS_CA_BUNDLE", os.environ["COMPOSE_SECRETS_CA_FILE"])
    try:
        import azure.identity  # noqa: F401
        import azure.keyvault.secrets  # noqa: F401
    except ImportError as e:
        print(f"python-sdk: {e}; run: pip install azure-keyvault-secrets azure-identity", file=sys.stderr)
        return 3
    checker = Checker(env_dir)
    try:
        checker.run()
    except CheckFailed as e:
        print(f"python-sdk: FAILED after {checker.ops} operations: {e}", file=sys.stderr)
        if os.environ.get("PYTHON_SDK_CHECK_TRACE"):
            traceback.print_exc()
        return 1
    print(f"python-sdk: {checker.ops} operations ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
