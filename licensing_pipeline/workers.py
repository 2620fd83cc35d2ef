"""Celery workers for the nightly job's steps (``LICENSING_EXECUTOR=celery``).

dagster-celery does the distributing: the process that runs the job sends each step to the
broker as a task, and a worker rebuilds the job from its own environment and executes the
step against the shared Dagster instance, warehouse and repository (all in PostgreSQL).
Workers therefore need the same ``LICENSING_*`` settings as the process that starts runs.
"""

import argparse
import socket
import warnings
from typing import TYPE_CHECKING, Any

import dagster as dg

from licensing_pipeline.instance import ensure_dagster_home
from licensing_pipeline.settings import ExecutorSettings, Settings, SettingsError

if TYPE_CHECKING:
    from celery import Celery


def celery_executor_config(executor: ExecutorSettings) -> dict[str, Any]:
    """The one config both sides use: the executor sends to the queue workers consume."""
    return {
        "broker": executor.celery_broker,
        "backend": executor.celery_backend,
        "config_source": {"task_default_queue": executor.celery_queue},
    }


def nightly_executor(settings: Settings) -> dg.ExecutorDefinition | None:
    """The nightly job's executor: None keeps the code location's in-process one."""
    if settings.executor.kind != "celery":
        return None
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_executor_config(settings.executor), name="celery")


def celery_app(executor: ExecutorSettings) -> "Celery":
    """dagster-celery's app with its step task, on the broker and queue of the settings."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    app = make_app(CeleryExecutor.for_cli(**celery_executor_config(executor)).app_args())
    create_task(app)
    return app


def worker_argv(
    executor: ExecutorSettings, name: str | None, concurrency: int | None, loglevel: str
) -> list[str]:
    argv = [
        "worker",
        "--queues",
        executor.celery_queue,
        "--hostname",
        f"{name or 'licensing'}@{socket.gethostname()}",
        # one step at a time per process: steps are long, and a prefetched one would wait
        "--prefetch-multiplier",
        "1",
        "--loglevel",
        loglevel,
    ]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    return argv


def run_worker(
    settings: Settings,
    *,
    name: str | None = None,
    concurrency: int | None = None,
    loglevel: str = "INFO",
) -> None:
    """Consume steps until stopped, in the profile's Dagster instance (DAGSTER_HOME and the
    storage URL exported as for `licensing-pipeline run`)."""
    ensure_dagster_home(settings)
    app = celery_app(settings.executor)
    app.worker_main(worker_argv(settings.executor, name, concurrency, loglevel))


def missing_workers(executor: ExecutorSettings, timeout: float = 2.0) -> str | None:
    """Why a Celery run would wait forever (no broker, or no worker on its queue), or None."""
    app = celery_app(executor)
    try:
        queues = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception as exc:  # kombu raises the transport's own errors
        return f"the Celery broker {executor.celery_broker} does not answer ({exc})"
    finally:
        app.close()
    if not any(q.get("name") == executor.celery_queue for qs in queues.values() for q in qs):
        return (
            f"no Celery worker consumes queue {executor.celery_queue!r} on "
            f"{executor.celery_broker}: start one with `licensing-pipeline worker`"
        )
    return None


def execute_nightly(
    instance: dg.DagsterInstance, run_config: dict[str, Any], tags: dict[str, str] | None = None
) -> dg.JobExecutionResult:
    """Run the nightly job with its own executor: ``execute_in_process`` would ignore the
    Celery executor, ``execute_job`` uses it and needs a job it can rebuild elsewhere."""
    from celery.exceptions import DuplicateTaskNameWarning

    from licensing_pipeline.definitions import nightly_compliance_job

    with warnings.catch_warnings():
        # dagster-celery registers its one step task again for every step it sends
        warnings.filterwarnings("ignore", category=DuplicateTaskNameWarning)
        return dg.execute_job(
            dg.reconstructable(nightly_compliance_job),
            instance=instance,
            run_config=run_config,
            tags=tags,
        )


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    if settings.profile != "postgres":
        raise SettingsError(
            "licensing-pipeline worker needs LICENSING_PROFILE=postgres and the same "
            "LICENSING_DATABASE_URL as the process that starts runs"
        )
    run_worker(settings, name=args.name, concurrency=args.concurrency, loglevel=args.loglevel)
    return 0


def add_worker_command(subparsers: Any) -> None:
    """Add ``worker`` to the ``licensing-pipeline`` parser."""
    worker = subparsers.add_parser(
        "worker", help="execute nightly steps sent through Celery (LICENSING_EXECUTOR=celery)"
    )
    worker.add_argument("--name", help="worker name, before @host (default: licensing)")
    worker.add_argument(
        "--concurrency", type=int, help="steps at once (default: the number of CPUs)"
    )
    worker.add_argument("--loglevel", default="INFO", help="Celery's log level (default INFO)")
    worker.set_defaults(func=cmd_worker)
