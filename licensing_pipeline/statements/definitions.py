"""What the statements package adds: customer statements and the folder they go to."""

import dagster as dg

from licensing_pipeline.settings import Settings
from licensing_pipeline.statements.assets import customer_statements
from licensing_pipeline.statements.resources import StatementFolder


def defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[customer_statements],
        resources={
            "statements": StatementFolder(
                directory=str(settings.statements_dir), file_mode=settings.statements_mode
            )
        },
    )
