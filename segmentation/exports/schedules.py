"""One django-celery-beat PeriodicTask per export (decisions 42), kept in step by export services."""

from __future__ import annotations

import json
import zoneinfo

from django.core.exceptions import ValidationError
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from segmentation.models import Export

SCHEDULED_TASK = "segmentation.tasks_exports.export_scheduled_run_task"


def validate_timezone(name: str) -> str:
    if not name:
        return name
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError({"timezone": f"“{name}” is not an IANA time zone (such as Europe/Warsaw)."})
    return name


def parse_cron(expr: str) -> dict:
    """Five crontab fields as CrontabSchedule kwargs; raises ValidationError for anything else."""
    parts = expr.split()
    if len(parts) != 5:
        raise ValidationError({"cron": "Use five fields: minute hour day-of-month month day-of-week."})
    fields = dict(zip(["minute", "hour", "day_of_month", "month_of_year", "day_of_week"], parts, strict=True))
    try:
        from celery.schedules import crontab

        crontab(**fields)
    except (ValueError, TypeError) as exc:
        raise ValidationError({"cron": f"Not a valid crontab: {exc}"})
    return fields


def schedule_validate(*, export: Export) -> None:
    errors = {}
    checks = [lambda: validate_timezone(export.timezone)]
    if export.schedule_type == Export.ScheduleType.CRONTAB:
        checks.append(lambda: parse_cron(export.cron))
    elif export.schedule_type == Export.ScheduleType.INTERVAL and (
        not export.interval_minutes or export.interval_minutes < 1
    ):
        errors["interval_minutes"] = ["Give the interval in whole minutes (at least 1)."]
    for check in checks:
        try:
            check()
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)


HOUSEKEEPING = {
    "exports: reap orphaned runs": ("segmentation.tasks_exports.export_runs_reap_task", {"interval": 5}),
    "exports: delete expired files": ("segmentation.tasks_exports.export_files_cleanup_task", {"cron": "30 3 * * *"}),
}


def housekeeping_sync() -> None:
    """The reaper and the retention cleanup exist as periodic tasks once any export exists."""
    for name, (task_name, when) in HOUSEKEEPING.items():
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        if "interval" in when:
            interval, _ = IntervalSchedule.objects.get_or_create(
                every=when["interval"], period=IntervalSchedule.MINUTES
            )
            PeriodicTask.objects.create(name=name, task=task_name, interval=interval)
        else:
            crontab, _ = CrontabSchedule.objects.get_or_create(**parse_cron(when["cron"]), timezone="UTC")
            PeriodicTask.objects.create(name=name, task=task_name, crontab=crontab)


def schedule_sync(*, export: Export) -> PeriodicTask | None:
    """Create, update or remove the export's periodic task; returns it (None when unscheduled)."""
    housekeeping_sync()
    task = export.periodic_task
    if export.schedule_type == Export.ScheduleType.NONE:
        if task is not None:
            export.periodic_task = None
            Export.objects.filter(pk=export.pk).update(periodic_task=None)
            task.delete()
        return None
    kwargs = {"crontab": None, "interval": None}
    if export.schedule_type == Export.ScheduleType.CRONTAB:
        kwargs["crontab"], _ = CrontabSchedule.objects.get_or_create(
            **parse_cron(export.cron), timezone=zoneinfo.ZoneInfo(export.zone_name)
        )
    else:
        kwargs["interval"], _ = IntervalSchedule.objects.get_or_create(
            every=export.interval_minutes, period=IntervalSchedule.MINUTES
        )
    values = {
        "name": f"export:{export.pk}",
        "task": SCHEDULED_TASK,
        "args": json.dumps([export.pk]),
        "enabled": export.enabled,
        "description": f"Scheduled run of export “{export.name}”",
        **kwargs,
    }
    if task is None:
        task = PeriodicTask.objects.filter(name=values["name"]).first() or PeriodicTask(name=values["name"])
    for key, value in values.items():
        setattr(task, key, value)
    task.save()
    if export.periodic_task_id != task.pk:
        export.periodic_task = task
        Export.objects.filter(pk=export.pk).update(periodic_task=task)
    return task


def schedule_describe(*, export: Export) -> str:
    if export.schedule_type == Export.ScheduleType.CRONTAB:
        return f"cron “{export.cron}” ({export.zone_name})"
    if export.schedule_type == Export.ScheduleType.INTERVAL:
        return f"every {export.interval_minutes} min"
    return "not scheduled"
