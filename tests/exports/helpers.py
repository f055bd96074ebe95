from segmentation.exports.services import export_create, export_run, export_run_start
from segmentation.models import ExportRun


def make_export(segment, **fields):
    values = {
        "name": "VIP list",
        "columns": ["external_id", "email", "first_name", "country"],
        "filename_template": "{segment}.csv",
    }
    values.update(fields)
    return export_create(segment=segment, **values)


def run_now(export) -> ExportRun:
    run = export_run_start(export=export, enqueue=False)
    export_run(run_id=run.pk)
    run.refresh_from_db()
    return run


def content(run) -> bytes:
    with run.file.open("rb") as fh:
        return fh.read()
