"""The dashboard folder: it names every tenant, so its page is the owner's only."""

from __future__ import annotations

import stat
from pathlib import Path

from licensing_pipeline.dashboard.resources import DashboardFolder


def test_the_dashboard_is_private_whatever_the_umask(tmp_path: Path, open_umask: None):
    folder = tmp_path / "dashboard"
    folder.mkdir(mode=0o755)  # an earlier release's folder
    page = DashboardFolder(directory=str(folder)).publish("<html></html>")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
