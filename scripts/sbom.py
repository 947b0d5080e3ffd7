#!/usr/bin/env python3
"""CycloneDX 1.5 JSON of compose-secrets' normal dependency tree, for `make dist`.

cargo-cyclonedx would do this too, but installing it means compiling another ~200 crates on a
2-core machine; `cargo tree -e normal` is the same tree `make lint` checks, and Cargo.lock gives
the checksums. Output is deterministic (no clock, a name-based serial) so two builds compare.

Usage: scripts/sbom.py <repo_root> <target triple> <SOURCE_DATE_EPOCH>   (JSON on stdout)
"""

import datetime
import json
import subprocess
import sys
import tomllib
import uuid

PRODUCT = "compose-secrets"


def tree(repo_root, target):
    """(name, version, licence, is_path) of every package in the product's normal tree."""
    out = subprocess.run(
        ["cargo", "tree", "--locked", "-e", "normal", "-p", PRODUCT, "--target", target,
         "--prefix", "none", "--no-dedupe", "-f", "{p}\t{l}"],
        cwd=repo_root, check=True, capture_output=True, text=True).stdout
    seen = {}
    for line in out.splitlines():
        pkg, _, licence = line.partition("\t")
        parts = pkg.replace(" (*)", "").split()
        name, version = parts[0], parts[1].lstrip("v")
        is_path = len(parts) > 2 and parts[2].startswith("(/")
        seen[(name, version)] = (licence.strip(), is_path)
    return seen


def checksums(repo_root):
    with open(f"{repo_root}/Cargo.lock", "rb") as f:
        lock = tomllib.load(f)
    return {(p["name"], p["version"]): p.get("checksum") for p in lock.get("package", [])}


def component(name, version, licence, checksum):
    purl = f"pkg:cargo/{name}@{version}"
    comp = {"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl}
    if licence:
        comp["licenses"] = [{"expression": licence}]
    if checksum:
        comp["hashes"] = [{"alg": "SHA-256", "content": checksum}]
    return comp


def main():
    repo_root, target, epoch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    packages = tree(repo_root, target)
    sums = checksums(repo_root)
    product = next(k for k in packages if k[0] == PRODUCT)
    components = [
        component(n, v, lic, sums.get((n, v)))
        for (n, v), (lic, is_path) in sorted(packages.items())
        if (n, v) != product
    ]
    ident = "\n".join(f"{n}@{v}" for n, v in sorted(packages))
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, ident)}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
            .strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "scripts/sbom.py"}]},
            "component": {
                "type": "application",
                "bom-ref": f"pkg:cargo/{PRODUCT}@{product[1]}",
                "name": PRODUCT,
                "version": product[1],
                "purl": f"pkg:cargo/{PRODUCT}@{product[1]}",
                "licenses": [{"expression": packages[product][0]}],
            },
        },
        "components": components,
    }
    json.dump(bom, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
