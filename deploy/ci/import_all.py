"""Import every module of one package; run inside an environment that has only that package.

Used by `make check-deps`: a module importing something its package does not declare fails here.
"""

import importlib
import pkgutil
import sys


def main() -> int:
    package = importlib.import_module(sys.argv[1])
    failures = []
    for module in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
        if module.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(module.name)
        except ImportError as exc:
            failures.append(f"{module.name}: {exc}")
    for failure in failures:
        print(f"undeclared dependency? {failure}", file=sys.stderr)  # noqa: T201
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
