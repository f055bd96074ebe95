"""The staging table of a customer import: set-based checks and writes.

Raw SQL is deliberate here: this is a bulk writer (COPY + INSERT ... SELECT), not the segment
compiler. Identifiers come from model metadata and uuid4 only; values always go through parameters.
"""

from __future__ import annotations

import contextlib
import uuid
from array import array
from functools import partial

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from customers.models import Customer, Tag

from ..profiles import PROFILE_FIELDS
from . import indexes
from .header import KEY

FETCH_BATCH = 10_000  # ids per fetch while streaming the touched ids
# PostgreSQL session memory for an import (see Staging.tune). Temporary tables live in the
# session's temp_buffers (8 MB by default), so a million staged rows (~200 MB) would go through
# temp files on every statement; the hash joins and aggregates over them want more than the
# default 4 MB work_mem. Both are allocated only as used, and only by the importing session.
IMPORT_TEMP_BUFFERS = "512MB"
IMPORT_WORK_MEM = "128MB"
# Session settings of an import, restored by drop(). JIT compiles the big set-based statements
# for longer than they run: their row estimates (JSON arrays, freshly filled columns) are high.
# maintenance_work_mem: index builds after a bulk load (indexes.rebuilt) sort in memory.
IMPORT_SETTINGS = {"work_mem": IMPORT_WORK_MEM, "maintenance_work_mem": "256MB", "jit": "off"}
STAGING_STATISTICS_TARGET = "10"  # ANALYZE samples 300 rows per unit of the target
STAGED_PROFILE = (KEY, *PROFILE_FIELDS)
# Before apply(): a row that matched no profile (and is not an ambiguous email).
IS_NEW = "(customer_id IS NULL AND coalesce(match_count, 0) = 0)"


class DuplicateKeys(Exception):
    """apply() found external_ids that the file has twice (the check analyse() left to the
    profiles' unique index); nothing is written, and find_duplicate_keys() lists them."""


class Staging:
    """A temporary table of validated rows, on the current connection."""

    def __init__(self, *, profile: list[str], custom: dict[str, str | None], has_tags: bool):
        self.pg = connection.vendor == "postgresql"
        self.table = f"tessera_import_{uuid.uuid4().hex[:12]}"
        self.profile = profile
        self.custom_keys = sorted(custom)
        self.has_tags = has_tags
        self.customers = Customer._meta.db_table
        self.tags_through = Customer.tags.through._meta.db_table
        self._settings: dict[str, str] = {}
        # Set by analyse(): no staged row matched a profile or goes by email, so every row is new.
        self.all_new = False
        self.duplicates_deferred = False
        self._raced = False  # apply() updated profiles created since the checks

    @classmethod
    def create(cls, **kwargs) -> Staging:
        staging = cls(**kwargs)
        if staging.pg:
            staging.tune()
        json_type = "jsonb" if staging.pg else "text"
        date_type = "date" if staging.pg else "text"
        profile = ", ".join(f"{f} {date_type if f == 'birth_date' else 'text'}" for f in STAGED_PROFILE)
        # No primary key on PostgreSQL: every statement below hash-joins the whole table, and an
        # index would only slow the COPY. SQLite joins by nested loops and needs it.
        line = "line integer" if staging.pg else "line integer PRIMARY KEY"
        new_id = "new_id bigint"
        if staging.pg:
            # Every staged row draws its profile id while it is copied in; rows that match a profile
            # drop theirs when they are matched (same UPDATE). Renumbering the new rows afterwards
            # would rewrite the whole staging table. The cost: one sequence value per matched row.
            sequence = staging._all("SELECT pg_get_serial_sequence(%s, 'id')", [staging.customers])[0][0]
            new_id += " DEFAULT nextval('{}'::regclass)".format(sequence.replace("'", "''"))
        staging._run(
            f"CREATE TEMP TABLE {staging.table} ({line}, {profile}, "
            f"custom {json_type} NOT NULL DEFAULT '{{}}', tag_keys {json_type}, "
            "customer_id bigint, match_count integer, "
            "attrs_changed boolean NOT NULL DEFAULT false, "
            f"tags_changed boolean NOT NULL DEFAULT false, {new_id})"
        )
        staging._run(f"CREATE TEMP TABLE {staging.table}_err (line integer, col text, msg text)")
        staging._run(f"CREATE TEMP TABLE {staging.table}_tags (key text PRIMARY KEY, tag_id bigint)")
        return staging

    def tune(self) -> None:
        """Give this session the memory a big import needs, JIT off; drop() restores them.

        temp_buffers can only change before the session's first temporary table (a session that
        already had one keeps its value: slower, not wrong), hence the savepoint.
        """
        try:
            with transaction.atomic():
                self._run(f"SET temp_buffers = '{IMPORT_TEMP_BUFFERS}'")
        except DatabaseError:
            pass
        for name, value in IMPORT_SETTINGS.items():
            self._settings[name] = self._all("SELECT current_setting(%s)", [name])[0][0]
            self._run("SELECT set_config(%s, %s, false)", [name, value])

    # -- helpers ---------------------------------------------------------------
    def _run(self, sql: str, params=None):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount

    def _all(self, sql: str, params=None) -> list:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def _distinct(self, a: str, b: str) -> str:
        return f"{a} IS DISTINCT FROM {b}" if self.pg else f"{a} IS NOT {b}"

    def _json_key_differs(self, a: str, b: str, params: list, key: str) -> str:
        if self.pg:
            params.extend([key, key])
            return f"({a} -> %s) IS DISTINCT FROM ({b} -> %s)"
        path = f'$."{key}"'
        params.extend([path, path, path, path])
        # json_type tells 1 from true, json_extract compares the values themselves.
        return f"(json_type({a}, %s) IS NOT json_type({b}, %s) OR json_extract({a}, %s) IS NOT json_extract({b}, %s))"

    def _each(self, expr: str) -> str:
        return f"jsonb_array_elements_text({expr}) AS x(value)" if self.pg else f"json_each({expr}) AS x"

    def _json_len(self, expr: str) -> str:
        return f"jsonb_array_length({expr})" if self.pg else f"json_array_length({expr})"

    def _merge_custom(self, current: str, patch: str, params: list) -> str:
        """The stored custom object with every file column removed, then the row's values added."""
        if self.pg:
            params.append(self.custom_keys)
            return f"(({current} - %s::text[]) || {patch})"
        params.extend(f'$."{k}"' for k in self.custom_keys)
        return f"json_patch(json_remove({current}, {', '.join(['%s'] * len(self.custom_keys))}), {patch})"

    # -- load --------------------------------------------------------------------
    @contextlib.contextmanager
    def loader(self, validator):
        """A function that validates a chunk of rows (rows.RowValidator) and stages the good ones;
        it returns (rows staged, bad rows).

        On PostgreSQL the rows go as COPY text into one COPY that stays open until the block ends,
        so the server stores one chunk while Python validates the next; nothing else may use the
        connection meanwhile. SQLite inserts them a chunk per transaction.
        """
        if not self.pg:
            names = ", ".join(validator.staged_columns)
            marks = ", ".join(["?"] * len(validator.staged_columns))
            insert = partial(self._insert, f"INSERT INTO {self.table} ({names}) VALUES ({marks})")

            def stage_rows(chunk) -> tuple[int, list]:
                good, bad = validator.validate(chunk)
                if good:
                    insert(good)
                return len(good), bad

            yield stage_rows
            return
        with self.copy_writer(validator.staged_columns) as write:

            def stage_text(chunk) -> tuple[int, list]:
                data, count, bad = validator.validate_copy(chunk)
                if count:
                    write(data)
                return count, bad

            yield stage_text

    @contextlib.contextmanager
    def copy_writer(self, columns: list[str]):
        """PostgreSQL: a function writing COPY text (RowValidator.validate_copy) into the table."""
        names = ", ".join(columns)
        with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {self.table} ({names}) FROM STDIN") as copy:
            yield copy.write

    def delete_from_line(self, line: int) -> int:
        """Remove the staged rows of this file line and after; returns how many there were."""
        return self._run(f"DELETE FROM {self.table} WHERE line >= %s", [line])

    def _insert(self, sql: str, rows: list[tuple]) -> None:
        raw = connection.connection
        if connection.in_atomic_block:
            raw.executemany(sql, rows)
            return
        # One deferred transaction per chunk instead of one per row. It writes only the temp
        # database, so unlike Django's BEGIN IMMEDIATE it never blocks other writers.
        raw.execute("BEGIN DEFERRED")
        try:
            raw.executemany(sql, rows)
        except BaseException:
            raw.execute("ROLLBACK")
            raise
        raw.execute("COMMIT")

    def _analyze(self) -> None:
        before = self._all("SELECT current_setting('default_statistics_target')")[0][0]
        self._run("SELECT set_config('default_statistics_target', %s, false)", [STAGING_STATISTICS_TARGET])
        try:
            self._run(f"ANALYZE {self.table}")
        finally:
            self._run("SELECT set_config('default_statistics_target', %s, false)", [before])

    # -- checks and preview --------------------------------------------------------
    def analyse(self, *, tag_names: dict[str, str], defer_duplicates: bool = False) -> None:
        """Match rows to profiles, find in-file conflicts, and mark what would change.

        With `defer_duplicates` (an import that will be written unless this finds errors), a file
        whose rows are all new leaves its duplicate external_ids to the profiles' unique index:
        apply() inserts them all in one statement, which fails on the second row of any
        duplicate, and then raises DuplicateKeys (see apply). That saves a hash aggregate over
        the whole file on the common first import; a dry run still lists them up front.
        """
        t, c = self.table, self.customers
        if self.pg:
            # No indexes: PostgreSQL hash-joins the staging table, and each index would make the
            # updates below rewrite it too. The plans need the row count and how distinct the keys
            # are, which a 3,000-row sample gives as well as the default 30,000 (a tenth of the time).
            self._analyze()
        else:
            self._run(f"CREATE INDEX {t}_ext ON {t} (external_id)")
            self._run(f"CREATE INDEX {t}_email ON {t} (email)")
        # Rows matched by external_id are compared with their profile in the same pass (a second
        # join of a million rows cost 2.7 s); rows matched by email are compared in _mark_changes.
        params: list = []
        differs = self._attrs_differ(params)
        matched = self._run(
            f"UPDATE {t} SET customer_id = c.id, new_id = NULL, attrs_changed = ({differs}) FROM {c} AS c "
            f"WHERE {t}.external_id IS NOT NULL AND c.external_id = {t}.external_id",
            params,
        )
        # The statements about rows without external_id, or about matched rows, are skipped when
        # there are none (each is a pass over the staging table; a first import of a file with ids
        # has neither).
        by_email = self._any("external_id IS NULL")
        if by_email:
            self._run(
                f"UPDATE {t} SET match_count = (SELECT count(*) FROM {c} AS c WHERE c.email = {t}.email) "
                f"WHERE {t}.external_id IS NULL"
            )
            matched += self._run(
                f"UPDATE {t} SET customer_id = (SELECT min(c.id) FROM {c} AS c WHERE c.email = {t}.email), "
                f"new_id = NULL WHERE {t}.external_id IS NULL AND match_count = 1"
            )
        if matched and self.pg:
            # customer_id was all NULL when the table was analysed; the conflict and change checks
            # join on it (with stale statistics PostgreSQL probes the links once per row).
            self._analyze()
        elif matched:
            self._run(f"CREATE INDEX {t}_cust ON {t} (customer_id)")
        self.all_new = not matched and not by_email
        self.duplicates_deferred = defer_duplicates and self.all_new
        self._find_conflicts(by_email=by_email, matched=matched)
        if self.has_tags:
            self._map_tags(tag_names, create=False)
        if matched:
            self._mark_changes(by_email=by_email)

    def _any(self, condition: str) -> bool:
        return self._all(f"SELECT EXISTS (SELECT 1 FROM {self.table} WHERE {condition})")[0][0]

    def find_duplicate_keys(self) -> None:
        """Record every row whose external_id an earlier row of the file has."""
        t, err = self.table, f"{self.table}_err"
        self._run(
            f"INSERT INTO {err} (line, col, msg) "
            f"SELECT s.line, 'external_id', 'Duplicate external_id “' || s.external_id || '” (first on line ' "
            f"|| CAST(f.first AS text) || ').' FROM {t} AS s JOIN (SELECT external_id, min(line) AS first FROM {t} "
            "WHERE external_id IS NOT NULL GROUP BY external_id HAVING count(*) > 1) AS f "
            "ON f.external_id = s.external_id WHERE s.line > f.first"
        )

    def _any_duplicate_keys(self) -> bool:
        return self._all(
            f"SELECT EXISTS (SELECT 1 FROM {self.table} WHERE external_id IS NOT NULL "
            "GROUP BY external_id HAVING count(*) > 1)"
        )[0][0]

    def _find_conflicts(self, *, by_email: bool, matched: bool) -> None:
        t, err = self.table, f"{self.table}_err"
        if not self.duplicates_deferred:
            self.find_duplicate_keys()
        if by_email:
            self._run(
                f"INSERT INTO {err} (line, col, msg) "
                f"SELECT s.line, 'email', 'Duplicate email “' || s.email || '” in rows without external_id "
                f"(first on line ' || CAST(f.first AS text) || ').' FROM {t} AS s JOIN (SELECT email, min(line) "
                f"AS first FROM {t} WHERE external_id IS NULL GROUP BY email HAVING count(*) > 1) AS f "
                "ON f.email = s.email WHERE s.external_id IS NULL AND s.line > f.first"
            )
            self._run(
                f"INSERT INTO {err} (line, col, msg) "
                f"SELECT line, 'email', CAST(match_count AS text) || ' profiles have the email “' || email || "
                f"'”; add an external_id to choose one.' FROM {t} WHERE external_id IS NULL AND match_count > 1"
            )
        if not matched or not by_email:
            # Without email rows every profile was reached by its external_id, unique on both
            # sides: rows sharing a profile share the key, which the duplicate check reports.
            return
        # Two rows that reach one profile by different keys (an external_id row and an email row).
        self._run(
            f"INSERT INTO {err} (line, col, msg) "
            f"SELECT s.line, CASE WHEN s.external_id IS NULL THEN 'email' ELSE 'external_id' END, "
            f"'Updates the same profile as line ' || CAST(f.first AS text) || '.' FROM {t} AS s "
            f"JOIN (SELECT customer_id, min(line) AS first FROM {t} WHERE customer_id IS NOT NULL "
            f"GROUP BY customer_id HAVING count(*) > 1) AS f ON f.customer_id = s.customer_id "
            f"JOIN {t} AS p ON p.line = f.first WHERE s.line > f.first "
            "AND NOT (s.external_id IS NOT NULL AND p.external_id IS NOT NULL AND s.external_id = p.external_id) "
            "AND NOT (s.external_id IS NULL AND p.external_id IS NULL AND s.email = p.email)"
        )

    def _attrs_differ(self, params: list) -> str:
        """SQL true when the profile `c` differs from the staged row in a column of the file."""
        t = self.table
        tests = [self._distinct(f"c.{f}", f"{t}.{f}") for f in self.profile]
        tests += [self._json_key_differs("c.custom", f"{t}.custom", params, key) for key in self.custom_keys]
        return " OR ".join(tests) or ("false" if self.pg else "0")

    def _mark_changes(self, *, by_email: bool) -> None:
        """Flag matched rows whose tags differ, and rows matched by email whose attributes do
        (analyse() compared the rows matched by external_id); only those rows are rewritten."""
        t, c = self.table, self.customers
        if by_email and self.profile + self.custom_keys:
            params: list = []
            differs = self._attrs_differ(params)
            self._run(
                f"UPDATE {t} SET attrs_changed = true FROM {c} AS c "
                f"WHERE c.id = {t}.customer_id AND {t}.external_id IS NULL AND ({differs})",
                params,
            )
        if not self.has_tags:
            return
        through = self.tags_through
        if self.pg:
            # Set-based: the pairs (profile, tag) the file asks for against the pairs the matched
            # profiles have; a profile on either side alone has changed tags. A file tag with no
            # Tag yet has no id, so it never pairs up and marks its row changed.
            self._run(
                f"UPDATE {t} SET tags_changed = true WHERE customer_id IN ("
                "SELECT coalesce(a.customer_id, b.customer_id) FROM "
                f"(SELECT s.customer_id, m.tag_id FROM {t} AS s CROSS JOIN {self._each('s.tag_keys')} "
                f"LEFT JOIN {t}_tags AS m ON m.key = x.value WHERE s.customer_id IS NOT NULL) AS a "
                f"FULL JOIN (SELECT ct.customer_id, ct.tag_id FROM {through} AS ct WHERE ct.customer_id IN "
                f"(SELECT customer_id FROM {t} WHERE customer_id IS NOT NULL)) AS b "
                "ON a.customer_id = b.customer_id AND a.tag_id = b.tag_id "
                "WHERE a.customer_id IS NULL OR b.customer_id IS NULL)"
            )
            return
        self._run(
            f"UPDATE {t} SET tags_changed = true FROM {c} AS c WHERE c.id = {t}.customer_id AND ("
            f"(SELECT count(*) FROM {through} AS ct WHERE ct.customer_id = c.id) "
            f"<> {self._json_len(f'{t}.tag_keys')} OR EXISTS (SELECT 1 FROM {self._each(f'{t}.tag_keys')} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {through} AS ct JOIN {t}_tags AS m "
            "ON m.tag_id = ct.tag_id WHERE ct.customer_id = c.id AND m.key = x.value)))"
        )

    def row_errors(self, *, limit: int) -> tuple[list[dict], int]:
        """Errors of the first `limit` rows found in SQL, and how many rows have one."""
        err = f"{self.table}_err"
        total = self._all(f"SELECT count(DISTINCT line) FROM {err}")[0][0]
        if not total:
            return [], 0
        rows = self._all(
            f"SELECT line, col, msg FROM {err} WHERE line IN "
            f"(SELECT DISTINCT line FROM {err} ORDER BY line LIMIT %s) ORDER BY line, col",
            [limit],
        )
        return [{"line": line, "column": col, "message": msg} for line, col, msg in rows], total

    def counts(self, *, errors: int) -> tuple[int, int, int]:
        """(created, updated, unchanged) among the rows without errors (`errors`: how many rows
        have an error in the SQL checks)."""
        t = self.table
        if self.all_new and not errors:
            return self._all(f"SELECT count(*) FROM {t}")[0][0], 0, 0
        row = self._all(
            f"SELECT coalesce(sum(CASE WHEN {IS_NEW} THEN 1 END), 0), "
            "coalesce(sum(CASE WHEN customer_id IS NOT NULL AND (attrs_changed OR tags_changed) THEN 1 END), 0), "
            "coalesce(sum(CASE WHEN customer_id IS NOT NULL THEN 1 END), 0) "
            f"FROM {t} WHERE line NOT IN (SELECT line FROM {t}_err)"
        )[0]
        created, updated, matched = (int(v) for v in row)
        return created, updated, matched - updated

    # -- write ------------------------------------------------------------------
    def apply(self, *, tag_names: dict[str, str], default_source: str | None, rebuild_indexes: bool = False) -> None:
        """Write the staged rows; the caller holds the transaction.

        With `rebuild_indexes` (a bulk load into a nearly empty table, see indexes.rebuild_pays)
        the profiles' and links' indexes are dropped first and built again after the rows. If the
        tables are busy, or a unique index refuses the rows, that is undone and the rows are
        written the usual way: a duplicate the file has is reported as DuplicateKeys, and a profile
        created since the checks takes the ON CONFLICT path.
        """
        if rebuild_indexes:
            try:
                with transaction.atomic(), indexes.rebuilt([self.customers, self.tags_through]):
                    self._apply(tag_names=tag_names, default_source=default_source)
                return
            except indexes.NotRebuilt:
                if self.duplicates_deferred and self._any_duplicate_keys():
                    raise DuplicateKeys from None
        self._apply(tag_names=tag_names, default_source=default_source)

    def _apply(self, *, tag_names: dict[str, str], default_source: str | None) -> None:
        t, c = self.table, self.customers
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        if self.has_tags:
            self._map_tags(tag_names, create=True)
        # Existing profiles that change.
        params: list = []
        sets = [f"{f} = {t}.{f}" for f in self.profile]
        if self.custom_keys:
            sets.append(f"custom = {self._merge_custom(f'{c}.custom', f'{t}.custom', params)}")
        sets.append("updated_at = %s")
        params.append(now)
        self._run(
            f"UPDATE {c} SET {', '.join(sets)} FROM {t} "
            f"WHERE {c}.id = {t}.customer_id AND ({t}.attrs_changed OR {t}.tags_changed)",
            params,
        )
        # New profiles, with ids taken up front so tags can follow without matching rows back
        # (on PostgreSQL drawn while copying, see create()).
        if not self.pg:
            self._run(
                f"WITH n AS (SELECT line, row_number() OVER (ORDER BY line) AS rn FROM {t} WHERE {IS_NEW}) "
                f"UPDATE {t} SET new_id = n.rn + max(coalesce((SELECT max(id) FROM {c}), 0), "
                f"coalesce((SELECT seq FROM sqlite_sequence WHERE name = %s), 0)) FROM n WHERE n.line = {t}.line",
                [c],
            )
        columns = ["id", KEY, *self.profile]
        values = ["new_id", KEY, *self.profile]
        params = []
        if default_source is not None:
            columns.append("source")
            values.append("%s")
            params.append(default_source)
        columns += ["custom", "created_at", "updated_at"]
        values += ["custom", "%s", "%s"]
        params += [now, now]
        insert = f"INSERT INTO {c} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {t} WHERE new_id IS NOT NULL"
        if not self._insert_new(insert, params):
            if self.duplicates_deferred and self._any_duplicate_keys():
                raise DuplicateKeys
            self._insert_new_racing(insert, params)
        if self.has_tags:
            self._replace_tags()

    def _insert_new(self, insert: str, params: list) -> bool:
        """The new profiles, if none of their external_ids was taken since the checks.

        Plain first: ON CONFLICT costs an extra index probe and WAL record per row (a third of the
        statement) for a race that is rare, and when it happens the savepoint undoes the attempt.
        """
        try:
            with transaction.atomic():
                self._run(insert, params)
        except IntegrityError:
            return False
        return True

    def _insert_new_racing(self, insert: str, params: list) -> None:
        """A profile with one of the file's external_ids was created (by tracking) since the checks:
        it is updated instead, by the same rules as the matched profiles in apply()."""
        t, c = self.table, self.customers
        self._raced = True
        params = list(params)  # the conflict clause's parameters follow the insert's
        conflict = [f"{f} = excluded.{f}" for f in self.profile]
        if self.custom_keys:
            conflict.append(f"custom = {self._merge_custom(f'{c}.custom', 'excluded.custom', params)}")
        conflict.append("updated_at = excluded.updated_at")
        self._run(f"{insert} ON CONFLICT (external_id) DO UPDATE SET {', '.join(conflict)}", params)
        # From here a row's profile is coalesce(customer_id, new_id); the racing profile
        # replaces new_id, which was then never inserted.
        self._run(
            f"UPDATE {t} SET customer_id = c.id FROM {c} AS c WHERE {t}.new_id IS NOT NULL "
            f"AND {t}.external_id IS NOT NULL AND c.external_id = {t}.external_id AND c.id <> {t}.new_id"
        )

    def _map_tags(self, tag_names: dict[str, str], *, create: bool) -> None:
        """Fill {table}_tags (lower-cased name -> tag id) for the file's tags; create missing ones if asked."""
        mapped = {key for (key,) in self._all(f"SELECT key FROM {self.table}_tags")}
        wanted = [k for k in tag_names if k not in mapped]
        known: dict[str, int] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            for name, pk in Tag.objects.annotate(lname=Lower("name")).filter(lname__in=part).values_list("name", "pk"):
                known[name.lower()] = pk
        missing = [tag_names[k] for k in wanted if k not in known]
        if create and missing:
            Tag.objects.bulk_create([Tag(name=name) for name in missing], ignore_conflicts=True)
            lowered = [m.lower() for m in missing]
            for name, pk in (
                Tag.objects.annotate(lname=Lower("name")).filter(lname__in=lowered).values_list("name", "pk")
            ):
                known[name.lower()] = pk
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {self.table}_tags (key, tag_id) VALUES (%s, %s)", list(known.items()))

    def _replace_tags(self) -> None:
        t, through = self.table, self.tags_through
        # A profile created by this import has no tags yet (no one else sees it before commit);
        # only matched profiles, and those that raced in since the checks, lose their old tags.
        self._run(
            f"DELETE FROM {through} WHERE customer_id IN "
            f"(SELECT customer_id FROM {t} WHERE customer_id IS NOT NULL AND (tags_changed OR new_id IS NOT NULL))"
        )
        # The link table has no foreign keys (decisions): a matched profile erased since the checks
        # gets no links. The profiles that change are locked by apply()'s UPDATE, so an erasure
        # either committed before it (and is seen here) or waits for this import and then removes
        # the links written here.
        self._run(
            f"INSERT INTO {through} (customer_id, tag_id) SELECT coalesce({t}.customer_id, {t}.new_id), m.tag_id "
            f"FROM {t}, {self._each(f'{t}.tag_keys')}, {t}_tags AS m "
            f"WHERE m.key = x.value AND ({t}.tags_changed OR {t}.new_id IS NOT NULL) AND ({t}.customer_id IS NULL "
            f"OR EXISTS (SELECT 1 FROM {self.customers} AS c WHERE c.id = {t}.customer_id))"
        )

    def touched_ids(self) -> array:
        """The profiles apply() created or changed, in id order."""
        if self.all_new and not self._raced:
            # Every staged row created the profile with its new_id. Unless other sessions drew
            # ids while the file was copied in, those are one run of numbers (1M: 0.27 s, not 0.69 s).
            low, high, count = self._all(f"SELECT min(new_id), max(new_id), count(*) FROM {self.table}")[0]
            if count and high - low + 1 == count:  # new_ids are distinct: exactly low..high
                return array("q", range(low, high + 1))
        ids = array("q")
        # A server-side cursor on PostgreSQL, so a million ids stream instead of landing in one result.
        with connection.chunked_cursor() as cursor:
            cursor.execute(
                f"SELECT coalesce(customer_id, new_id) AS id FROM {self.table} "
                "WHERE new_id IS NOT NULL OR attrs_changed OR tags_changed ORDER BY id"
            )
            while batch := cursor.fetchmany(FETCH_BATCH):
                ids.extend(row[0] for row in batch)
        return ids

    def drop(self) -> None:
        for suffix in ("", "_err", "_tags"):
            try:
                self._run(f"DROP TABLE IF EXISTS {self.table}{suffix}")
            except DatabaseError:  # the connection's transaction is broken; the table dies with it
                pass
        for name, value in self._settings.items():
            try:
                self._run("SELECT set_config(%s, %s, false)", [name, value])
            except DatabaseError:  # as above: a broken transaction rolls the SET back anyway
                pass
