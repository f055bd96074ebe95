import datetime as dt
import io

import pytest
from django.utils import timezone

from customers.models import AttributeDefinition, Customer, Tag
from customers.services.attributes import attribute_register
from customers.services.imports import customer_import
from customers.signals import profile_changed
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def run(text: str | bytes, *, dry_run=False, **kwargs):
    data = text.encode() if isinstance(text, str) else text
    return customer_import(path_or_file=io.BytesIO(data), dry_run=dry_run, **kwargs)


def csv(*lines: str) -> str:
    return "\r\n".join(lines) + "\r\n"


def snapshot():
    """Everything an import may write, to prove a rejected file wrote nothing."""
    return (
        list(Customer.objects.order_by("id").values()),
        list(Customer.tags.through.objects.order_by("id").values("customer_id", "tag_id")),
        list(Tag.objects.order_by("id").values_list("name", flat=True)),
        list(AttributeDefinition.objects.filter(kind="custom").values_list("key", "type")),
    )


def tag_names(customer):
    return sorted(t.name for t in customer.tags.all())


def test_creates_profiles_with_normalised_values():
    result = run(
        csv(
            "external_id,email,first_name,gender,birth_date,country,phone,tags",
            'u1, Ann@Example.COM ,Ann,F,1990-02-03,Poland,+48 600 100 200,"vip, Newsletter"',
            "u2,bob@example.com,Bob,man,,usa,,",
        )
    )
    assert result.ok, result.errors
    assert (result.created, result.updated, result.unchanged) == (2, 0, 0)
    ann = Customer.objects.get(external_id="u1")
    assert (ann.email, ann.first_name, ann.gender, ann.country) == ("ann@example.com", "Ann", "female", "PL")
    assert ann.birth_date == dt.date(1990, 2, 3)
    assert ann.phone == "+48 600 100 200"
    assert tag_names(ann) == ["Newsletter", "vip"]
    bob = Customer.objects.get(external_id="u2")
    assert (bob.gender, bob.country, bob.birth_date) == ("male", "US", None)
    assert tag_names(bob) == []


def test_dry_run_previews_and_writes_nothing():
    CustomerFactory(external_id="u1", email="a@example.com", first_name="Ann")
    CustomerFactory(external_id="u2", email="b@example.com", first_name="Bob")
    before = snapshot()
    result = run(
        csv("external_id,first_name,custom.score", "u1,Ann,", "u2,Robert,", "u3,Cid,7"),
        dry_run=True,
    )
    assert result.ok and result.dry_run
    assert (result.created, result.updated, result.unchanged) == (1, 1, 1)
    assert result.new_attributes == {"score": "number"}
    assert snapshot() == before


def test_upsert_by_external_id_touches_only_file_columns():
    old = timezone.now() - dt.timedelta(days=3)
    kept = CustomerFactory(external_id="u1", email="a@example.com", city="Kraków", first_name="Ann", updated_at=old)
    same = CustomerFactory(external_id="u2", email="b@example.com", first_name="Bob", updated_at=old)
    result = run(csv("external_id,first_name", "u1,Anna", "u2,Bob"))
    assert (result.created, result.updated, result.unchanged) == (0, 1, 1)
    kept.refresh_from_db()
    same.refresh_from_db()
    assert (kept.first_name, kept.city, kept.email) == ("Anna", "Kraków", "a@example.com")
    assert kept.updated_at > old
    assert same.updated_at == old


def test_rows_without_external_id_match_by_email():
    match = CustomerFactory(external_id="u1", email="ann@example.com")
    result = run(csv("external_id,email,city", ",ANN@example.com,Gdańsk", ",new@example.com,Łódź"))
    assert result.ok, result.errors
    assert (result.created, result.updated) == (1, 1)
    match.refresh_from_db()
    assert match.city == "Gdańsk"
    created = Customer.objects.get(email="new@example.com")
    assert created.external_id is None and created.city == "Łódź"


def test_ambiguous_email_is_a_row_error():
    CustomerFactory(external_id="a", email="twin@example.com")
    CustomerFactory(external_id="b", email="twin@example.com")
    before = snapshot()
    result = run(csv("email,city", "ok@example.com,X", "twin@example.com,Y"))
    assert not result.ok
    assert result.errors == [
        {"line": 3, "column": "email", "message": "2 profiles have the email “twin@example.com”; add an external_id "
         "to choose one."}
    ]  # fmt: skip
    assert snapshot() == before


def test_two_rows_reaching_one_profile_by_different_keys():
    CustomerFactory(external_id="u1", email="ann@example.com")
    result = run(csv("external_id,email,city", "u1,ann@example.com,X", ",ann@example.com,Y"))
    assert result.errors == [{"line": 3, "column": "email", "message": "Updates the same profile as line 2."}]


def test_tags_replace_the_set_and_empty_clears_them():
    Tag.objects.create(name="VIP")
    ann = CustomerFactory(external_id="u1", tags=["old", "VIP"])
    bob = CustomerFactory(external_id="u2", tags=["keep"])
    cid = CustomerFactory(external_id="u3", tags=["stay"])
    result = run(csv("external_id,tags", 'u1,"vip, fresh, Fresh"', "u2,"))
    assert result.ok, result.errors
    assert (result.updated, result.unchanged) == (2, 0)
    assert tag_names(ann) == ["VIP", "fresh"]
    assert tag_names(bob) == []
    assert tag_names(cid) == ["stay"]
    assert Tag.objects.filter(name__iexact="vip").count() == 1
    again = run(csv("external_id,tags", 'u1,"  FRESH ,vip"', "u2,"))
    assert (again.updated, again.unchanged) == (0, 2)


def test_a_file_without_tags_column_keeps_tags():
    ann = CustomerFactory(external_id="u1", tags=["vip"])
    assert run(csv("external_id,city", "u1,Kraków")).updated == 1
    assert tag_names(ann) == ["vip"]


def test_empty_cells_clear_values():
    attribute_register(key="score", type_="number")
    ann = CustomerFactory(external_id="u1", email="a@example.com", city="Kraków", custom={"score": 5, "other": "x"})
    result = run(csv("external_id,email,city,custom.score", "u1,,,"))
    assert result.updated == 1
    ann.refresh_from_db()
    assert (ann.email, ann.city) == (None, None)
    assert ann.custom == {"other": "x"}


def test_empty_external_id_is_no_key():
    result = run(csv("external_id,email", " ,solo@example.com"))
    assert result.created == 1
    assert Customer.objects.get().external_id is None


def test_row_without_any_key_is_an_error():
    result = run(csv("external_id,email,city", ",,Kraków"))
    assert result.errors == [
        {"line": 2, "column": "external_id", "message": "The row needs an external_id or an email to match a profile."}
    ]


def test_new_custom_column_type_comes_from_the_whole_column():
    result = run(
        csv(
            "external_id,custom.code,custom.when,custom.flag,custom.n,custom.blank",
            "u1,1,2026-01-02,true,1.5,",
            "u2,2,2026-01-02T10:00:00Z,FALSE,-2,",
            "u3,abc,,,,",
        )
    )
    assert result.ok, result.errors
    assert result.new_attributes == {"code": "string", "flag": "boolean", "n": "number", "when": "datetime"}
    types = dict(AttributeDefinition.objects.filter(kind="custom").values_list("key", "type"))
    assert types == {"custom.code": "string", "custom.flag": "boolean", "custom.n": "number", "custom.when": "datetime"}
    assert "Column custom.blank has no values; it was not registered." in result.notices
    u1 = Customer.objects.get(external_id="u1").custom
    assert u1 == {"code": "1", "when": "2026-01-02T00:00:00.000000Z", "flag": True, "n": 1.5}
    assert Customer.objects.get(external_id="u2").custom["n"] == -2


def test_registered_type_must_fit():
    attribute_register(key="score", type_="number")
    before = snapshot()
    result = run(csv("external_id,custom.score", "u1,5", "u2,lots"))
    assert result.errors == [
        {"line": 3, "column": "custom.score", "message": "“lots” is not a number (custom.score is number)."}
    ]
    assert snapshot() == before


def test_bad_rows_reject_the_whole_file_with_line_and_column():
    CustomerFactory(external_id="existing")
    before = snapshot()
    result = run(
        csv(
            "external_id,email,country,birth_date",
            "u1,good@example.com,PL,1990-01-01",
            "u2,not-an-email,PL,",
            "u3,c@example.com,Atlantis,",
            "u4,d@example.com,PL,31/12/1990",
            "u1,e@example.com,PL,",
            ",f@example.com,PL,",
            ",f@example.com,DE,",
            "u5,g@example.com",
            "u6,h@exa\x00mple.com,PL,",
        )
    )
    assert not result.ok
    assert result.rejected == result.error_total == 7
    assert [(e["line"], e["column"]) for e in result.errors] == [
        (3, "email"),
        (4, "country"),
        (5, "birth_date"),
        (6, "external_id"),
        (8, "email"),
        (9, None),
        (10, "email"),
    ]
    assert result.errors[3]["message"] == "Duplicate external_id “u1” (first on line 2)."
    assert "NUL" in result.errors[6]["message"]
    assert (result.created, result.updated) == (0, 0)
    assert snapshot() == before


def _sql_log(data: str, *, dry_run: bool):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        result = run(data, dry_run=dry_run)
    return result, " ".join(q["sql"] for q in queries.captured_queries)


def test_duplicate_keys_of_new_profiles_are_left_to_the_unique_index_and_reported_alike():
    """A file of new profiles skips the duplicate query; the INSERT's unique index finds them,
    and the report is the dry run's, with nothing written (no tag, no attribute either)."""
    CustomerFactory(external_id="someone-else")
    before = snapshot()
    data = csv(
        "external_id,email,tags,custom.plan",
        "u1,a@example.com,vip,pro",
        "u2,b@example.com,New Tag,free",
        "u1,c@example.com,,free",
        "u3,d@example.com,,",
        "u2,e@example.com,,",
        "u1,f@example.com,,",
    )
    preview, preview_sql = _sql_log(data, dry_run=True)
    result, sql = _sql_log(data, dry_run=False)
    assert "Duplicate external_id" in preview_sql and "Duplicate external_id" in sql  # found after the INSERT failed
    assert sql.index("INSERT INTO customers_customer (") < sql.rindex("Duplicate external_id")
    assert not result.ok and result.error_total == result.rejected == 3
    assert (
        result.errors
        == preview.errors
        == [
            {"line": 4, "column": "external_id", "message": "Duplicate external_id “u1” (first on line 2)."},
            {"line": 6, "column": "external_id", "message": "Duplicate external_id “u2” (first on line 3)."},
            {"line": 7, "column": "external_id", "message": "Duplicate external_id “u1” (first on line 2)."},
        ]
    )
    assert (result.created, result.updated, result.unchanged) == (0, 0, 0)
    assert snapshot() == before


def test_a_clean_file_of_new_profiles_runs_no_duplicate_query():
    data = csv("external_id,email,tags", "u1,a@example.com,vip", "u2,b@example.com,", ",c@example.com,")
    keyed = csv("external_id,email,tags", "u1,a@example.com,vip", "u2,b@example.com,")
    result, sql = _sql_log(keyed, dry_run=False)
    assert result.ok and result.created == 2 and "Duplicate external_id" not in sql
    assert tag_names(Customer.objects.get(external_id="u1")) == ["vip"]
    # Rows matching profiles, or going by email, are checked up front as before.
    result, sql = _sql_log(data, dry_run=False)
    assert result.ok and (result.created, result.unchanged) == (1, 2)
    assert "Duplicate external_id" in sql


def test_rows_matched_by_external_id_are_compared_while_matching():
    """No second join to compare them, and no check for two keys reaching one profile, which
    only rows going by email can do; rows going by email still get both."""
    CustomerFactory(external_id="u1", email="a@example.com", city="A")
    CustomerFactory(external_id="u2", email="b@example.com", city="B")
    CustomerFactory(email="c@example.com", city="C")
    result, sql = _sql_log(csv("external_id,city", "u1,A", "u2,Changed"), dry_run=False)
    assert (result.created, result.updated, result.unchanged) == (0, 1, 1)
    assert "SET attrs_changed = true" not in sql and "Updates the same profile" not in sql
    assert Customer.objects.get(external_id="u2").city == "Changed"
    result, sql = _sql_log(csv("external_id,email,city", "u1,a@example.com,A", ",c@example.com,New"), dry_run=False)
    assert (result.created, result.updated, result.unchanged) == (0, 1, 1)
    assert "SET attrs_changed = true" in sql and "Updates the same profile" in sql
    assert Customer.objects.get(email="c@example.com").city == "New"


@pytest.mark.parametrize(
    "rows, key",
    [
        (("u1,a@example.com", "old,b@example.com", "u1,c@example.com"), "u1"),  # beside a matched row
        (("u1,a@example.com", ",z@example.com", "u1,c@example.com"), "u1"),  # beside a row going by email
        (("old,a@example.com", "u1,b@example.com", "old,c@example.com"), "old"),  # no INSERT would fail
    ],
)
def test_duplicate_keys_beside_matched_or_email_rows_are_found_up_front(rows, key):
    CustomerFactory(external_id="old", email="old@example.com")
    before = snapshot()
    result = run(csv("external_id,email", *rows))
    assert not result.ok
    assert result.errors == [
        {"line": 4, "column": "external_id", "message": f"Duplicate external_id “{key}” (first on line 2)."}
    ]
    assert snapshot() == before


def test_only_the_first_thousand_bad_rows_are_reported():
    lines = ["external_id,email"] + [f"u{i},bad{i}" for i in range(1203)] + ["u1,u1,x@example.com"]
    result = run(csv(*lines))
    assert result.error_total == 1204
    assert len({e["line"] for e in result.errors}) == 1000
    assert result.errors[0]["line"] == 2 and result.errors[-1]["line"] == 1001
    assert Customer.objects.count() == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty."),
        (b"\xef\xbb\xbf", "The file is empty."),
        (b"\r\n \r\n", "The file is empty."),
        ("external_id,city\r\nu1,Krak\u00f3w\r\n".encode("latin-1"), "not valid UTF-8 (first problem on line 2)"),
        ("external_id,city\r\nu1,x\r\n".encode("utf-16"), "UTF-16"),
        (b"external_id,city\r\nu1,\xed\xa0\x80\r\n", "not valid UTF-8 (first problem on line 2)"),
        (b",,\r\nu1,a@example.com,x\r\n", "no header line"),
        (b"u1,a@example.com\r\nu2,b@example.com\r\n", "not a header of attribute keys"),
        (b"external_id,emial\r\nu1,a@example.com\r\n", "Unknown columns: emial."),
        (b"external_id,email,Email\r\n", "Columns appear more than once: Email."),
        (b"first_name,city\r\nAnn,X\r\n", "needs an external_id or an email column"),
        (b"external_id,custom.bad key\r\nu1,x\r\n", "not a valid custom attribute key"),
        (b'external_id,city\r\nu1,"unterminated\r\n', None),
    ],
)
def test_bad_files_are_refused_with_a_clear_error(data, message):
    CustomerFactory(external_id="u1", city="Kraków")
    before = snapshot()
    result = run(data)
    if message is None:  # an unterminated quote swallows the rest: the row has too few cells
        assert not result.ok
    else:
        assert result.file_error and message in result.file_error, result.file_error
        assert result.errors[0]["message"] == result.file_error
    assert snapshot() == before


def test_bom_and_semicolon_are_read():
    data = '\ufeffexternal_id;city;tags\r\nu1;Kraków;"a, b"\r\nu2;"Nowy; Targ";\r\n'.encode()
    result = run(data)
    assert result.ok and result.delimiter == ";"
    assert Customer.objects.get(external_id="u1").city == "Kraków"
    assert Customer.objects.get(external_id="u2").city == "Nowy; Targ"


def test_explicit_delimiter_wins_over_sniffing():
    result = run(csv("external_id;city", "u1;A,B"), delimiter=";")
    assert result.ok
    assert Customer.objects.get().city == "A,B"


def test_line_numbers_count_physical_lines():
    result = run('external_id,first_name,email\r\nu1,"two\r\nlines",a@example.com\r\n\r\nu2,Bob,nope\r\n')
    assert result.errors == [{"line": 5, "column": "email", "message": "“nope” is not a valid email address."}]


def test_read_only_export_columns_are_ignored_with_a_notice():
    result = run(csv("id,external_id,created_at,total_spent,age,city", "7,u1,2020-01-01T00:00:00Z,10,33,Kraków"))
    assert result.ok
    assert result.notices == ["Read-only columns ignored: id, created_at, total_spent, age."]
    customer = Customer.objects.get()
    assert customer.city == "Kraków" and customer.created_at.year > 2020


def test_injection_escape_is_undone():
    result = run(csv("external_id,first_name,last_name,city", "u1,'=cmd(),'-x,'plain"))
    assert result.ok
    customer = Customer.objects.get()
    assert (customer.first_name, customer.last_name, customer.city) == ("=cmd()", "-x", "'plain")


def test_source_default_applies_to_new_profiles_only():
    old = CustomerFactory(external_id="u1", source="shop")
    run(csv("external_id,city", "u1,X", "u2,Y"), source="csv:people.csv")
    old.refresh_from_db()
    assert old.source == "shop"
    assert Customer.objects.get(external_id="u2").source == "csv:people.csv"


def test_profile_changed_is_sent_after_commit(django_capture_on_commit_callbacks):
    unchanged = CustomerFactory(external_id="u1", city="X")
    changed = CustomerFactory(external_id="u2", city="X")
    received = []

    def listener(sender, customer_ids, reason, **kwargs):
        received.append((sorted(customer_ids), reason))

    profile_changed.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            run(csv("external_id,city", "u1,X", "u2,Y", "u3,Z"))
            assert received == []
        assert len(callbacks) == 1
    finally:
        profile_changed.disconnect(listener)
    created = Customer.objects.get(external_id="u3")
    assert received == [(sorted([changed.pk, created.pk]), "import")]
    assert unchanged.pk not in received[0][0]


def test_profile_changed_names_every_created_profile_of_a_new_file(django_capture_on_commit_callbacks):
    received = []

    def listener(sender, customer_ids, reason, **kwargs):
        received.extend(customer_ids)

    profile_changed.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert run(csv("external_id,tags", "u1,vip", "u2,", "u3,b2b")).created == 3
    finally:
        profile_changed.disconnect(listener)
    assert received == sorted(Customer.objects.values_list("pk", flat=True))


@pytest.mark.parametrize("new_ids, shortcut", [([5, 6, 7, 8], True), ([5, 6, 8, 9], False), ([9, 5, 7, 6], False)])
def test_touched_ids_of_new_rows_are_their_ids_in_order(new_ids, shortcut):
    """One run of ids is returned without fetching them; ids other sessions broke up are fetched."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from customers.services.imports import Staging

    staging = Staging.create(profile=[], custom={}, has_tags=False)
    try:
        with connection.cursor() as cursor:
            for line, new_id in enumerate(new_ids, start=2):
                cursor.execute(
                    f"INSERT INTO {staging.table} (line, external_id, new_id) VALUES (%s, %s, %s)",
                    [line, f"u{line}", new_id],
                )
        staging.all_new = True
        with CaptureQueriesContext(connection) as queries:
            touched = list(staging.touched_ids())
    finally:
        staging.drop()
    assert touched == sorted(new_ids)
    assert any("ORDER BY" in q["sql"] for q in queries.captured_queries) is not shortcut


def test_touched_ids_after_a_race_name_the_racing_profile(monkeypatch, django_capture_on_commit_callbacks):
    from customers.services import imports

    original = imports.Staging.apply
    racers = []

    def racing_apply(self, **kwargs):
        racers.append(CustomerFactory(external_id="u2"))
        return original(self, **kwargs)

    received = []

    def listener(sender, customer_ids, reason, **kwargs):
        received.extend(customer_ids)

    monkeypatch.setattr(imports.Staging, "apply", racing_apply)
    profile_changed.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert run(csv("external_id,city", "u1,A", "u2,B", "u3,C")).ok
    finally:
        profile_changed.disconnect(listener)
    assert Customer.objects.get(external_id="u2").pk == racers[0].pk
    assert received == sorted(Customer.objects.values_list("pk", flat=True))


def test_accepts_a_path(tmp_path):
    path = tmp_path / "people.csv"
    path.write_bytes(csv("external_id,email", "u1,a@example.com").encode())
    result = customer_import(path_or_file=str(path), dry_run=False)
    assert result.created == 1


def test_progress_is_reported(tmp_path):
    calls = []
    run(csv("external_id", *[f"u{i}" for i in range(10)]), progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (11, 11)


def test_a_profile_created_between_checks_and_write_is_updated(monkeypatch):
    from customers.services import imports

    original = imports.Staging.apply

    def racing_apply(self, **kwargs):
        CustomerFactory(
            external_id="u1", email="old@example.com", city="Old", tags=["gone"], custom={"plan": "old", "keep": 1}
        )
        return original(self, **kwargs)

    monkeypatch.setattr(imports.Staging, "apply", racing_apply)
    result = run(csv("external_id,city,tags,custom.plan", "u1,New,vip,pro", "u2,Other,vip,"))
    assert result.ok and result.created == 2  # as previewed; u1 turned out to exist by then
    racer = Customer.objects.get(external_id="u1")
    assert (racer.city, racer.email) == ("New", "old@example.com")
    assert racer.custom == {"plan": "pro", "keep": 1}  # the file's column replaced, the rest kept
    assert tag_names(racer) == ["vip"]
    assert Customer.objects.count() == 2
    other = Customer.objects.get(external_id="u2")
    assert (other.city, tag_names(other)) == ("Other", ["vip"])


def test_header_only_file_imports_nothing_with_a_notice():
    result = run(csv("external_id,email"))
    assert result.ok and result.rows == 0
    assert result.notices == ["The file has a header but no rows."]


@pytest.mark.django_db(transaction=True)
def test_autocommit_path_like_the_command_and_worker():
    """Outside any transaction: staging survives between statements; signals go out at once."""
    received = []

    def listener(sender, customer_ids, reason, **kwargs):
        received.append(sorted(customer_ids))

    profile_changed.connect(listener)
    try:
        data = csv("external_id,email,tags,custom.plan", "u1,a@example.com,vip,pro", ",b@example.com,,free")
        assert run(data, dry_run=True).created == 2
        result = run(data)
    finally:
        profile_changed.disconnect(listener)
    assert result.ok and result.created == 2
    assert received == [sorted(Customer.objects.values_list("pk", flat=True))]
    assert tag_names(Customer.objects.get(external_id="u1")) == ["vip"]
    assert run(data).unchanged == 2
