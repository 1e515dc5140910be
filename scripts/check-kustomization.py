"""Checks kustomization.yaml files, which no Kubernetes schema covers.

For each file given: every entry of `resources` exists (a manifest, or a
folder with its own kustomization.yaml); every other manifest of the folder
is listed, so none is silently left out of `kubectl apply -k` (only
secret.example.yaml may stay out: it documents the generated Secret); and
the keys of each secretGenerator match those of the folder's
secret.example.yaml, so the example and what is deployed cannot drift.
Exit 0 when every file passed; each problem is one line naming the file.

Usage: python3 scripts/check-kustomization.py KUSTOMIZATION.yaml...
"""

import pathlib
import sys

import yaml


def check(path: pathlib.Path) -> list[str]:
    """Returns the problems of one kustomization.yaml."""
    problems = []
    doc = yaml.safe_load(path.read_text())
    folder = path.parent
    if doc.get("kind") != "Kustomization":
        return [f"{path}: kind is {doc.get('kind')!r}, expected Kustomization"]
    listed = set()
    for entry in doc.get("resources", []):
        target = folder / entry
        if target.is_dir():
            if not (target / "kustomization.yaml").is_file():
                problems.append(f"{path}: resource {entry}/ has no kustomization.yaml")
        elif not target.is_file():
            problems.append(f"{path}: resource {entry} does not exist")
        listed.add(target.resolve())
    for manifest in sorted(folder.glob("*.yaml")):
        if manifest.name in ("kustomization.yaml", "secret.example.yaml"):
            continue
        if manifest.resolve() not in listed:
            problems.append(f"{path}: {manifest.name} is not listed in resources")
    example = folder / "secret.example.yaml"
    for generator in doc.get("secretGenerator", []):
        keys = {f.split("=", 1)[0] for f in generator.get("files", [])}
        if not example.is_file():
            problems.append(f"{path}: secretGenerator {generator.get('name')} without secret.example.yaml")
            continue
        secret = yaml.safe_load(example.read_text())
        if secret["metadata"]["name"] != generator.get("name"):
            problems.append(
                f"{path}: secretGenerator {generator.get('name')} but secret.example.yaml names {secret['metadata']['name']}"
            )
        example_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
        if keys != example_keys:
            problems.append(
                f"{path}: secretGenerator keys {sorted(keys)} differ from secret.example.yaml's {sorted(example_keys)}"
            )
    return problems


def main() -> int:
    problems = [p for arg in sys.argv[1:] for p in check(pathlib.Path(arg))]
    for p in problems:
        print(f"check-kustomization: {p}", file=sys.stderr)
    if not sys.argv[1:]:
        print("usage: check-kustomization.py KUSTOMIZATION.yaml...", file=sys.stderr)
        return 2
    if not problems:
        print(f"check-kustomization: {len(sys.argv) - 1} kustomization file(s) consistent")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
