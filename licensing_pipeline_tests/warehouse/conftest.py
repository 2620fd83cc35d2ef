from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module", autouse=True)
def dbt_artifacts_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each dbt call leaves a folder of artifacts; keep them out of dbt_project/target."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DBT_TARGET_PATH", str(tmp_path_factory.mktemp("dbt_target")))
        yield
