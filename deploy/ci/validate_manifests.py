"""Validate rendered Kubernetes manifests (a multi-document YAML file) against JSON schemas.

Built-in kinds are checked with the strict schemas of one Kubernetes version that the
``kubernetes-validate`` package ships; kinds of a CustomResourceDefinition need a schema in
``deploy/helm/schemas`` (``<kind>-<group>-<version>.json``). An object of any other kind fails:
nothing passes unchecked.

    python deploy/ci/validate_manifests.py --kube-version 1.34 rendered.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

SCHEMAS = Path(__file__).resolve().parents[1] / "helm" / "schemas"


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def _custom_schema(api_version: str, kind: str) -> Path:
    group, _, version = api_version.rpartition("/")
    return SCHEMAS / f"{kind.lower()}-{group.split('.')[0]}-{version}.json"


def validate(document: dict[str, Any], kube_version: str) -> str:
    """Where the object's schema came from; raises ``jsonschema.ValidationError`` when invalid."""
    custom = _custom_schema(document["apiVersion"], document["kind"])
    if custom.exists():
        jsonschema.Draft202012Validator(json.loads(custom.read_text())).validate(document)
        return f"schema {custom.name}"
    used = kubernetes_validate.validate(document, kube_version, strict=True)
    return f"Kubernetes {used} schema (strict)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kube-version", required=True)
    parser.add_argument("manifests", type=Path)
    args = parser.parse_args(argv)
    documents = [d for d in yaml.safe_load_all(args.manifests.read_text()) if d]
    failures = 0
    for document in documents:
        name = f"{document.get('kind')}/{document.get('metadata', {}).get('name')}"
        try:
            source = validate(document, args.kube_version)
        except kubernetes_validate.SchemaNotFoundError:
            failures += 1
            _say(
                f"FAIL {name}: no schema for {document['apiVersion']} (add one to {SCHEMAS.name}/)"
            )
        except jsonschema.ValidationError as error:
            failures += 1
            where = "/".join(str(p) for p in error.absolute_path) or "(top)"
            _say(f"FAIL {name}: {where}: {error.message}")
        else:
            _say(f"ok   {name}: {source}")
    _say(f"{len(documents) - failures} valid, {failures} invalid")
    return 1 if failures or not documents else 0


if __name__ == "__main__":
    sys.exit(main())
