"""The ``dashboard`` resource: where the compliance dashboard page is published."""

from pathlib import Path

import dagster as dg

from licensing_pipeline.file_modes import own_folder
from licensing_pipeline.policy.enforcement import write_atomically

PAGE = "index.html"


class DashboardFolder(dg.ConfigurableResource):
    """``LICENSING_DASHBOARD_DIR`` (default ``$LICENSING_HOME/dashboard``): internal, it names
    every tenant; serve it to compliance and customer success only. The page is 0600 in a
    0700 folder."""

    directory: str

    @property
    def page_path(self) -> Path:
        return Path(self.directory).expanduser() / PAGE

    def publish(self, page: str) -> Path:
        own_folder(self.page_path.parent)
        write_atomically(self.page_path, page)
        return self.page_path
