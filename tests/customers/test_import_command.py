import io

import pytest
from django.core.management import CommandError, call_command

from customers.models import Customer

pytestmark = pytest.mark.django_db


def write(tmp_path, text: str):
    path = tmp_path / "people.csv"
    path.write_bytes(text.encode())
    return str(path)


def test_imports_with_summary_and_progress(tmp_path):
    path = write(tmp_path, "external_id;email\r\n" + "".join(f"u{i};u{i}@example.com\r\n" for i in range(20)))
    out, err = io.StringIO(), io.StringIO()
    call_command("import_customers", path, "--delimiter", ";", stdout=out, stderr=err)
    assert "Created: 20, updated: 0, unchanged: 0, rejected: 0" in out.getvalue()
    assert "100% 21/21 lines" in err.getvalue()
    assert Customer.objects.count() == 20


def test_dry_run_writes_nothing(tmp_path):
    path = write(tmp_path, "external_id\r\nu1\r\n")
    out = io.StringIO()
    call_command("import_customers", path, "--dry-run", stdout=out, stderr=io.StringIO())
    assert "Would create: 1" in out.getvalue()
    assert Customer.objects.count() == 0


def test_rejected_rows_exit_non_zero_with_the_errors(tmp_path):
    path = write(tmp_path, "external_id,country\r\nu1,PL\r\nu2,Narnia\r\n")
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 bad rows; nothing was imported"):
        call_command("import_customers", path, stdout=out, stderr=io.StringIO())
    assert "line 3 [country]: “Narnia” is not a known country" in out.getvalue()
    assert Customer.objects.count() == 0


def test_bad_file_exits_non_zero(tmp_path):
    with pytest.raises(CommandError, match="The file is empty"):
        call_command("import_customers", write(tmp_path, ""), stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_customers", str(tmp_path / "missing.csv"), stdout=io.StringIO(), stderr=io.StringIO())


def test_source_option(tmp_path):
    path = write(tmp_path, "external_id\r\nu1\r\n")
    call_command("import_customers", path, "--source", "crm", stdout=io.StringIO(), stderr=io.StringIO())
    assert Customer.objects.get().source == "crm"
