"""The sales store: validate a Kaggle-schema file, load it all or nothing, read it back."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import String, cast, delete, func, insert, select, tuple_
from sqlalchemy.orm import Session

from device.messages import echo
from storage.errors import Conflict, NotFound
from storage.models import IngestBatch, Sale

SALES_COLUMNS = ("date", "store", "item", "sales")
MAX_PROBLEMS_SHOWN = 10
# The registry's Integer columns hold 32-bit signed values on SQLite and PostgreSQL alike
# (SQLite would take more, PostgreSQL would not): one range keeps both backends equal.
INTEGER_COLUMN_MAX = 2_147_483_647
# The first day a sales file may carry by default; older rows are taken for a typo
# (1900 for 2000) or a unit mix-up rather than history worth training on.
EARLIEST_SALES_DATE = dt.date(2000, 1, 1)
ISO_DATE_CHARS = len("YYYY-MM-DD")


class SalesValidationError(ValueError):
    """A sales file or frame broke the schema; `problems` says where, one line each.

    The message's first line is the first problem, complete on its own (for a CLI's one-line
    error); the following lines list up to `MAX_PROBLEMS_SHOWN` more.
    """

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        more = len(problems) - 1
        headline = (f"{problems[0]} (file rejected, nothing loaded"
                    + (f"; {more} more problem(s) follow" if more else "") + ")")
        shown = problems[1:MAX_PROBLEMS_SHOWN]
        hidden = more - len(shown)
        super().__init__(
            "\n  ".join([headline, *shown]) + (f"\n  ... and {hidden} more" if hidden else "")
        )


@dataclass(frozen=True)
class IngestSummary:
    source: str
    rows_in_file: int
    rows_inserted: int
    rows_unchanged: int
    rows_replaced: int
    batch_id: int | None


def _line(index: int) -> int:
    """File line of a data row: the header is line 1."""
    return index + 2


def _at(source: str, index: int, column: str) -> str:
    return f"{source}:{_line(index)}: column {column!r}"


def _check_integer_column(raw: pd.Series, column: str, source: str, *, minimum: int) -> list[str]:
    """Problems of one integer column, each naming line, column and the (cut) value.

    Digits are counted before anything is converted, so a value of a million digits is an
    out-of-range problem, not Python's integer digit-limit error.
    """
    text = raw.str.strip()
    missing = text == ""
    is_int = text.str.fullmatch(r"[+-]?[0-9]+")
    negative = text.str.startswith("-")
    too_long = is_int & (text.str.lstrip("+-").str.lstrip("0").str.len() > len(str(INTEGER_COLUMN_MAX)))
    values = pd.to_numeric(text.where(is_int & ~too_long), errors="coerce")
    problems = []
    for index in raw.index[missing]:
        problems.append(f"{_at(source, index, column)}: missing value")
    for index in raw.index[~missing & ~is_int]:
        problems.append(f"{_at(source, index, column)}: {echo(raw[index])} is not an integer")
    for index in raw.index[(too_long & negative) | (values < minimum)]:
        problems.append(f"{_at(source, index, column)}: {echo(raw[index])} is below {minimum}")
    for index in raw.index[(too_long & ~negative) | (values > INTEGER_COLUMN_MAX)]:
        problems.append(f"{_at(source, index, column)}: {echo(raw[index])} is above "
                        f"{INTEGER_COLUMN_MAX}, the largest integer the registry stores")
    return problems


def _check_date_column(
    raw: pd.Series, source: str, *, earliest: dt.date, latest: dt.date
) -> tuple[pd.Series, list[str]]:
    """Parsed dates and the problems of the date column: not a date, or outside the window."""
    text = raw.str.strip()
    # nothing longer than YYYY-MM-DD can be one, so a huge field never reaches the parser
    dates = pd.to_datetime(text.where(text.str.len() <= ISO_DATE_CHARS), format="%Y-%m-%d",
                           errors="coerce")
    outside = dates.notna() & ((dates < pd.Timestamp(earliest)) | (dates > pd.Timestamp(latest)))
    problems = []
    for index in raw.index[dates.isna() | outside]:
        at, value = _at(source, index, "date"), raw[index]
        if outside[index] or _is_calendar_date(text[index]):
            problems.append(f"{at}: {echo(value)} is outside the window {earliest:%Y-%m-%d} to "
                            f"{latest:%Y-%m-%d} (from the earliest accepted date to tomorrow)")
        else:
            problems.append(f"{at}: {echo(value)} is not a date (expected YYYY-MM-DD)")
    return dates, problems


def _is_calendar_date(text: str) -> bool:
    """True for a real YYYY-MM-DD date; asked of those pandas cannot hold (before 1677, after
    2262), so that they are called out of the window rather than not a date."""
    if len(text) > ISO_DATE_CHARS:
        return False
    try:
        dt.datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def validate_sales_frame(
    raw: pd.DataFrame, source: str = "<frame>", *, earliest: dt.date = EARLIEST_SALES_DATE
) -> pd.DataFrame:
    """Check raw string columns against the sales schema; return typed, de-duplicated rows.

    Parameters
    ----------
    raw : DataFrame of strings as read from the file (row i is file line i + 2).
    source : name used in error messages (the file path).
    earliest : first accepted date; the last is tomorrow (today + 1 day, taken at the call),
        since a store may already be in tomorrow's time zone but no sale comes from further on.

    Returns
    -------
    DataFrame with ``date`` (datetime64), ``store``, ``item``, ``sales`` (int64),
    exact duplicate rows dropped.

    Raises
    ------
    SalesValidationError naming file line, column and value of every problem; store and item
    must be within 1..INTEGER_COLUMN_MAX, sales within 0..INTEGER_COLUMN_MAX.
    """
    latest = dt.date.today() + dt.timedelta(days=1)
    if earliest > latest:
        raise ValueError(f"earliest sales date {earliest} is after tomorrow ({latest})")
    columns = [str(c) for c in raw.columns]
    missing = [c for c in SALES_COLUMNS if c not in columns]
    extra = [c for c in columns if c not in SALES_COLUMNS]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if missing or extra or repeated:
        raise SalesValidationError(
            source,
            [
                f"{source}:1: header {echo(columns)}: expected columns {list(SALES_COLUMNS)!r}"
                + (f"; missing {missing!r}" if missing else "")
                + (f"; unexpected {echo(extra)}" if extra else "")
                + (f"; repeated {echo(repeated)}" if repeated else "")
            ],
        )
    if raw.empty:
        raise SalesValidationError(source, [f"{source}: no data rows (empty file)"])
    raw = raw.astype(str)
    dates, problems = _check_date_column(raw["date"], source, earliest=earliest, latest=latest)
    problems += _check_integer_column(raw["store"], "store", source, minimum=1)
    problems += _check_integer_column(raw["item"], "item", source, minimum=1)
    problems += _check_integer_column(raw["sales"], "sales", source, minimum=0)
    if problems:
        raise SalesValidationError(source, sorted(problems, key=_problem_line))

    typed = pd.DataFrame(
        {
            "date": dates,
            "store": raw["store"].str.strip().astype("int64"),
            "item": raw["item"].str.strip().astype("int64"),
            "sales": raw["sales"].str.strip().astype("int64"),
        }
    )
    keys = ["date", "store", "item"]
    dup = typed.duplicated(keys, keep=False)
    if dup.any():
        conflicting = typed[dup].groupby(keys)["sales"].nunique()
        for key in conflicting[conflicting > 1].index:
            rows = typed[dup & (typed[keys] == list(key)).all(axis=1)]
            lines = [str(_line(i)) for i in rows.index]
            problems.append(
                f"{source}:{lines[0]}: duplicate (date, store, item) = "
                f"({key[0]:%Y-%m-%d}, {key[1]}, {key[2]}) with different 'sales' "
                f"{echo(rows['sales'].tolist())} on lines {', '.join(lines[:MAX_PROBLEMS_SHOWN])}"
                + (f" and {len(lines) - MAX_PROBLEMS_SHOWN} more" if len(lines) > MAX_PROBLEMS_SHOWN
                   else "")
            )
        if problems:
            raise SalesValidationError(source, sorted(problems, key=_problem_line))
    return typed.drop_duplicates(keys).reset_index(drop=True)


def _problem_line(problem: str) -> int:
    parts = problem.split(":")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def read_sales_csv(
    path: str | Path, *, earliest: dt.date = EARLIEST_SALES_DATE
) -> tuple[pd.DataFrame, str]:
    """Read and validate a Kaggle-schema CSV; return (typed rows, sha256 of the file).

    Blank lines carry no sale and are skipped, but still counted, so every message names the
    file's own line number. `earliest` is the first accepted date (see `validate_sales_frame`).
    """
    path = Path(path)
    try:
        content = path.read_bytes()
    except FileNotFoundError as exc:
        raise NotFound(f"{path}: no such sales file (nothing loaded)") from exc
    except OSError as exc:
        raise SalesValidationError(str(path), [f"{path}: cannot read: {exc.strerror}"]) from exc
    if not content.strip():
        raise SalesValidationError(str(path), [f"{path}: empty file"])
    if b"\0" in content:  # pandas' reader drops a NUL and reads `5\0` as 5
        raise SalesValidationError(str(path), _nul_problems(path, content))
    try:
        # header=None: a row with more fields than the header is a ParserError naming its line
        # (with the header read as such, pandas would take the first column for an index)
        cells = pd.read_csv(io.BytesIO(content), header=None, dtype=str, keep_default_na=False,
                            skip_blank_lines=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        problem = (f"{path}:{fields[2]}: {fields[3]} fields, the header has {fields[1]}" if fields
                   else f"{path}: not a CSV file: {' '.join(str(exc).split())}")
        raise SalesValidationError(str(path), [problem]) from exc
    raw = cells.iloc[1:].fillna("")
    raw = raw[raw.apply(lambda column: column.str.strip() != "").any(axis=1)]
    raw.index = raw.index - 1  # row i is file line i + 2, as validate_sales_frame counts
    raw.columns = cells.iloc[0].fillna("").tolist()
    return validate_sales_frame(raw, str(path), earliest=earliest), hashlib.sha256(content).hexdigest()


def _nul_problems(path: Path, content: bytes) -> list[str]:
    """One problem per field holding a NUL byte, naming its line, column and value."""
    lines = content.decode("utf-8", errors="replace").split("\n")
    header = [name.strip() for name in lines[0].rstrip("\r").split(",")]
    problems = []
    for number, line in enumerate(lines, start=1):
        for position, value in enumerate(line.rstrip("\r").split(",")):
            if "\0" in value:
                column = header[position] if position < len(header) else f"field {position + 1}"
                problems.append(f"{path}:{number}: column {column!r}: {echo(value)} holds a NUL "
                                "byte")
    return problems


def ingest_sales(
    session: Session, sales: pd.DataFrame, *, source: str, sha256: str, replace: bool = False
) -> IngestSummary:
    """Load validated rows; rows already present with the same value are left alone.

    A row present with a different value is an error unless `replace`. The
    caller owns the transaction, so an error leaves nothing written.
    """
    existing = _existing_rows(session, sales)
    merged = sales.merge(existing, on=["date", "store", "item"], how="left", suffixes=("", "_db"))
    is_new = merged["sales_db"].isna()
    changed = ~is_new & (merged["sales_db"] != merged["sales"])
    if changed.any() and not replace:
        rows = merged[changed]
        shown = [
            f"{source}: row (date={r.date:%Y-%m-%d}, store={r.store}, item={r.item}): "
            f"column 'sales': {r.sales} differs from the stored {int(r.sales_db)}"
            for r in rows.head(MAX_PROBLEMS_SHOWN).itertuples()
        ]
        raise SalesValidationError(
            source, shown + [f"{int(changed.sum())} row(s) differ; use --replace to overwrite them"]
        )
    if is_new.sum() == 0 and changed.sum() == 0:
        return IngestSummary(source, len(sales), 0, len(sales), 0, None)
    batch = IngestBatch(
        source=source,
        sha256=sha256,
        rows_in_file=len(sales),
        rows_inserted=int(is_new.sum()),
        rows_replaced=int(changed.sum()),
    )
    session.add(batch)
    session.flush()
    if changed.any():
        keys = [(r.date.date(), r.store, r.item) for r in merged[changed].itertuples()]
        for chunk in _chunks(keys, 500):
            session.execute(delete(Sale).where(tuple_(Sale.date, Sale.store, Sale.item).in_(chunk)))
    _insert_rows(session, merged[is_new | changed], batch.id)
    return IngestSummary(
        source, len(sales), int(is_new.sum()), int((~is_new & ~changed).sum()),
        int(changed.sum()), batch.id,
    )


def _insert_rows(session: Session, rows: pd.DataFrame, batch_id: int) -> None:
    """Write validated rows in the caller's transaction: PostgreSQL's COPY (its bulk path,
    about twice as fast at a million rows), else batched INSERTs."""
    columns = zip(rows["date"].dt.date, rows["store"].astype(int), rows["item"].astype(int),
                  rows["sales"].astype(int), strict=True)
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        import psycopg

        cursor = connection.connection.driver_connection.cursor()
        try:
            with cursor.copy("COPY sales (date, store, item, sales, batch_id) FROM STDIN") as copy:
                for date, store, item, sold in columns:
                    copy.write_row((date, int(store), int(item), int(sold), batch_id))
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict("the registry changed concurrently (another ingest wrote the same "
                           "rows): nothing was written, try again") from exc
        return
    records = [{"date": date, "store": int(store), "item": int(item), "sales": int(sold),
                "batch_id": batch_id} for date, store, item, sold in columns]
    for chunk in _chunks(records, 5000):
        session.execute(insert(Sale), chunk)


def _chunks(values: list, size: int):
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _existing_rows(session: Session, sales: pd.DataFrame) -> pd.DataFrame:
    stmt = select(Sale.date, Sale.store, Sale.item, Sale.sales.label("sales_db")).where(
        Sale.date.between(sales["date"].min().date(), sales["date"].max().date()),
        Sale.store.in_(sorted(sales["store"].unique().tolist())),
        Sale.item.in_(sorted(sales["item"].unique().tolist())),
    )
    existing = pd.DataFrame(session.execute(stmt).all(), columns=["date", "store", "item", "sales_db"])
    existing["date"] = pd.to_datetime(existing["date"])
    return existing.astype({"store": "int64", "item": "int64", "sales_db": "float64"})


def load_sales(
    session: Session,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    stores: list[int] | None = None,
    items: list[int] | None = None,
) -> pd.DataFrame:
    """Stored sales as a DataFrame (date, store, item, sales), filtered and sorted."""
    # the day as ISO text, parsed by pandas in bulk rather than into a date object per row
    # (3.65 million rows, still as ORM rows then: 12.5 s with Date, 11.0 s as text)
    stmt = select(cast(Sale.date, String), Sale.store, Sale.item, Sale.sales)
    if start is not None:
        stmt = stmt.where(Sale.date >= start)
    if end is not None:
        stmt = stmt.where(Sale.date <= end)
    if stores:
        stmt = stmt.where(Sale.store.in_(stores))
    if items:
        stmt = stmt.where(Sale.item.in_(items))
    stmt = stmt.order_by(Sale.date, Sale.store, Sale.item)
    # in chunks, as Core rows: all ORM rows at once peaked at 1.4 GiB and took 10.7 s for 3.65
    # million rows (2,000 series x 5 years), a frame of 0.1 GiB; this way 0.45 GiB and 9 s
    result = session.connection().execution_options(yield_per=LOAD_CHUNK_ROWS).execute(stmt)
    chunks = [_typed_sales(rows) for rows in result.partitions()]
    return pd.concat(chunks, ignore_index=True) if chunks else _typed_sales([])


LOAD_CHUNK_ROWS = 500_000


def _typed_sales(rows) -> pd.DataFrame:
    """(date, store, item, sales) rows as a typed frame, column by column (a frame built from
    the row objects took twice as long)."""
    dates, stores, items, sales = zip(*rows, strict=True) if rows else ((), (), (), ())
    return pd.DataFrame({"date": pd.to_datetime(pd.Series(dates, dtype=object),
                                                format="%Y-%m-%d"),
                         "store": np.array(stores, dtype=np.int64),
                         "item": np.array(items, dtype=np.int64),
                         "sales": np.array(sales, dtype=np.int64)})


def sales_date_range(session: Session) -> tuple[dt.date | None, dt.date | None]:
    """First and last day with stored sales (None, None when the table is empty)."""
    return tuple(session.execute(select(func.min(Sale.date), func.max(Sale.date))).one())


def sales_fingerprint(sales: pd.DataFrame) -> str:
    """A sha256 of the rows' content, independent of row order: the cache key of a night's data."""
    ordered = sales.sort_values(["date", "store", "item"])[list(SALES_COLUMNS)]
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes())
    return digest.hexdigest()
