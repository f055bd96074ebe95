"""Celery tasks for exports: thin wrappers around segmentation.exports.services."""

from celery import shared_task

from segmentation.exports import services


@shared_task(name="segmentation.tasks_exports.export_run_task", acks_late=True)
def export_run_task(run_id: int) -> None:
    services.export_run(run_id=run_id)


@shared_task(name="segmentation.tasks_exports.export_scheduled_run_task")
def export_scheduled_run_task(export_id: int) -> None:
    services.export_scheduled_run(export_id=export_id)


@shared_task(name="segmentation.tasks_exports.export_runs_reap_task")
def export_runs_reap_task() -> int:
    return services.export_runs_reap()


@shared_task(name="segmentation.tasks_exports.export_files_cleanup_task")
def export_files_cleanup_task() -> int:
    return services.export_files_cleanup()
