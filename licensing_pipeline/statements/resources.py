"""The ``statements`` resource: the folder customer statements are published to."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from licensing_pipeline.file_modes import PRIVATE_FILE, folder_mode, own_folder
from licensing_pipeline.policy.enforcement import write_atomically
from licensing_pipeline.statements.statement import render_html, render_json, statement_key


class StatementFolder(dg.ConfigurableResource):
    """``LICENSING_STATEMENTS_DIR`` (default ``$LICENSING_HOME/statements``): one folder per
    tenant, so a portal or a share can hand each customer their own folder and nothing else.
    Files are ``file_mode`` (``LICENSING_STATEMENTS_MODE``, 0600: the owner's only), the
    folders the matching mode (0700)."""

    directory: str
    file_mode: int = PRIVATE_FILE

    def path_for(self, tenant_id: str, period: str, suffix: str) -> Path:
        return Path(self.directory).expanduser() / statement_key(tenant_id) / f"{period}{suffix}"

    def publish(self, statement: Mapping[str, Any]) -> Path:
        """Write the statement as HTML and JSON (each replaced in one rename); the HTML path."""
        tenant_id, period = str(statement["tenant_id"]), str(statement["period"])
        page = self.path_for(tenant_id, period, ".html")
        folders = folder_mode(self.file_mode)
        own_folder(page.parent.parent, folders)
        own_folder(page.parent, folders)
        write_atomically(
            self.path_for(tenant_id, period, ".json"), render_json(statement), self.file_mode
        )
        write_atomically(page, render_html(statement), self.file_mode)
        return page
