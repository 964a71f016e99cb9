"""Sales files: every validation rule, all-or-nothing loading, idempotent re-ingest."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from storage.models import Sale
from storage.sales import SalesValidationError, ingest_sales, load_sales, read_sales_csv

GOOD = "date,store,item,sales\n2017-01-01,1,1,13\n2017-01-01,1,2,40\n2017-01-02,1,1,11\n"


def write(tmp_path, text, name="sales.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def count_rows(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Sale))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("date,store,sales\n2017-01-01,1,3\n", "missing ['item']"),
        ("date,store,item,sales,price\n2017-01-01,1,1,3,2\n", "unexpected ['price']"),
        ("date,store,item,sales\n2017-01-01,1,1,3\n2017-13-01,1,2,4\n",
         ":3: column 'date': '2017-13-01' is not a date"),
        ("date,store,item,sales\n2017-01-01,1,1,3.5\n", ":2: column 'sales': '3.5' is not an integer"),
        ("date,store,item,sales\n2017-01-01,1,1,-2\n", ":2: column 'sales': '-2' is below 0"),
        ("date,store,item,sales\n2017-01-01,1,1,\n", ":2: column 'sales': missing value"),
        ("date,store,item,sales\n2017-01-01,x1,1,4\n", ":2: column 'store': 'x1' is not an integer"),
        ("date,store,item,sales\n2017-01-01,1,2.0,4\n", ":2: column 'item': '2.0' is not an integer"),
        ("date,store,item,sales\n2017-01-01,1,1,4\n2017-01-01,1,1,5\n",
         ":2: duplicate (date, store, item) = (2017-01-01, 1, 1) with different 'sales' [4, 5] "
         "on lines 2, 3"),
        ("", "empty file"),
        ("date,store,item,sales\n", "no data rows"),
    ],
    ids=["missing-column", "extra-column", "bad-date", "float-sales", "negative-sales",
         "missing-sales", "non-integer-store", "non-integer-item", "conflicting-duplicate",
         "empty-file", "header-only"],
)
def test_each_validation_rule_rejects_the_file_naming_row_column_value(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(SalesValidationError) as raised:
        read_sales_csv(path)
    assert expected in str(raised.value)
    assert str(path) in str(raised.value)


def test_exact_duplicate_rows_are_loaded_once(tmp_path):
    sales, _ = read_sales_csv(write(tmp_path, GOOD + "2017-01-02,1,1,11\n"))
    assert len(sales) == 3


def test_rejected_file_writes_no_row(tmp_path, sessions):
    path = write(tmp_path, GOOD + "2017-01-03,1,1,oops\n")
    with pytest.raises(SalesValidationError):
        sales, sha = read_sales_csv(path)
    assert count_rows(sessions) == 0


def test_ingest_is_idempotent_and_refuses_changed_values_without_replace(tmp_path, sessions):
    sales, sha = read_sales_csv(write(tmp_path, GOOD))
    with sessions() as session, session.begin():
        first = ingest_sales(session, sales, source="a.csv", sha256=sha)
    with sessions() as session, session.begin():
        again = ingest_sales(session, sales, source="a.csv", sha256=sha)
    assert (first.rows_inserted, again.rows_inserted, again.rows_unchanged) == (3, 0, 3)

    changed, sha2 = read_sales_csv(write(tmp_path, GOOD.replace(",40", ",41") + "2017-01-03,1,1,9\n",
                                         "b.csv"))
    with pytest.raises(SalesValidationError, match="differs from the stored 40"):
        with sessions() as session, session.begin():
            ingest_sales(session, changed, source="b.csv", sha256=sha2)
    assert count_rows(sessions) == 3  # the new 2017-01-03 row was not written either

    with sessions() as session, session.begin():
        replaced = ingest_sales(session, changed, source="b.csv", sha256=sha2, replace=True)
    assert (replaced.rows_inserted, replaced.rows_replaced) == (1, 1)
    with sessions() as session:
        stored = load_sales(session)
    assert stored.loc[stored["item"] == 2, "sales"].tolist() == [41]
    assert len(stored) == 4


def test_sales_load_in_chunks_typed_sorted_and_filtered_on_each_backend(sessions, monkeypatch):
    """Millions of rows load in chunks (storage.sales.LOAD_CHUNK_ROWS); any chunk size gives
    the same frame: sorted by day, store and item, typed, filtered."""
    import pandas as pd

    import storage.sales
    from storage.synthetic import generate_sales

    sales = generate_sales(stores=2, items=3, start="2017-01-01", end="2017-01-20", seed=4)
    with sessions() as session, session.begin():
        ingest_sales(session, sales.sample(frac=1, random_state=0), source="g.csv", sha256="g")
    with sessions() as session:
        whole = load_sales(session)
        monkeypatch.setattr(storage.sales, "LOAD_CHUNK_ROWS", 7)
        chunked = load_sales(session)
        some = load_sales(session, start=dt.date(2017, 1, 5), end=dt.date(2017, 1, 6), stores=[2])
        none = load_sales(session, start=dt.date(2018, 1, 1))
    pd.testing.assert_frame_equal(chunked, whole)
    expected = sales.sort_values(["date", "store", "item"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(whole, expected[["date", "store", "item", "sales"]],
                                  check_dtype=False)
    assert whole.dtypes.astype(str).tolist() == ["datetime64[ns]", "int64", "int64", "int64"]
    assert len(some) == 2 * 3 and set(some["store"]) == {2}
    assert some["date"].min() == pd.Timestamp("2017-01-05")
    assert none.empty and none.dtypes.astype(str).tolist() == whole.dtypes.astype(str).tolist()
