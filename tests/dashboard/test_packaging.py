"""The built page ships with the metrics service: in its wheel, in its Docker image, small."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from koalr_metrics.app import DASHBOARD
from tests.dashboard.support import ROOT, build_dashboard

#: Gzipped JavaScript and CSS the page may weigh (docs/dashboard.md reports the actual size).
BUNDLE_BUDGET_BYTES = 40_000


def test_the_metrics_wheel_carries_the_built_page(tmp_path: Path) -> None:
    build_dashboard()
    uv = shutil.which("uv") or str(ROOT / ".tools" / "venv" / "bin" / "uv")
    subprocess.run(
        [uv, "build", "--package", "koalr-metrics", "--wheel", "-o", str(tmp_path), "-q"],
        cwd=ROOT,
        check=True,
    )
    (wheel,) = tmp_path.glob("koalr_metrics-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {
            name.removeprefix("koalr_metrics/dashboard/")
            for name in archive.namelist()
            if name.startswith("koalr_metrics/dashboard/") and not name.endswith("/")
        }
    assert shipped == {"index.html", "app.js", "app.css"}


def test_the_docker_image_builds_the_page_from_every_tracked_source() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "web/dashboard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    if not tracked:
        pytest.fail("git lists no files under web/dashboard", pytrace=False)
    top_level = {Path(path).relative_to("web/dashboard").parts[0] for path in tracked}
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    copied = {
        Path(source).relative_to("web/dashboard").parts[0]
        for line in re.findall(r"^COPY (.+)$", dockerfile, flags=re.MULTILINE)
        for source in line.split()[:-1]
        if source.startswith("web/dashboard/")
    }
    assert copied == top_level
    assert "npm ci" in dockerfile
    assert (
        "COPY --from=dashboard /src/services/metrics/src/koalr_metrics/dashboard "
        "services/metrics/src/koalr_metrics/dashboard"
    ) in dockerfile


def test_the_bundle_stays_small() -> None:
    build_dashboard()
    gzipped = sum(
        len(gzip.compress((DASHBOARD / name).read_bytes(), compresslevel=9))
        for name in ("app.js", "app.css")
    )
    assert gzipped <= BUNDLE_BUDGET_BYTES


def test_make_skips_the_build_while_the_sources_are_unchanged() -> None:
    build_dashboard()
    # `make -q` runs nothing and exits 0 only when the target is up to date.
    question = subprocess.run(
        ["make", "-q", "dashboard"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert question.returncode == 0, question.stdout + question.stderr
