import re

import pytest

from dagmm_lightning.data.tables import ordinal


@pytest.mark.parametrize(
    "n, expected",
    [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (13, "13th"), (21, "21st")]
    + [(102, "102nd"), (111, "111th"), (1013, "1,013th"), (1_000_001, "1,000,001st")],
)
def test_ordinal_numbers_take_their_english_suffix(n, expected):
    assert ordinal(n) == expected


def test_encoding_and_scaling_by_slices_equal_the_whole_table_computation(monkeypatch):
    import numpy as np
    import pandas as pd

    from dagmm_lightning.data import tables
    from dagmm_lightning.data.tables import CONSTANT_LIMIT, RawTable, TablePreprocessor

    monkeypatch.setattr(tables, "SLICE_ROWS", 3)  # slices that split the rows unevenly
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"a": rng.normal(size=11) * 1e3, "b": np.ones(11), "kind": rng.choice(["tcp", "udp", "icmp"], 11)}
    )
    prep = TablePreprocessor().fit_columns(RawTable(frame, None, ["kind"]))
    encoded = prep.encode(frame)
    dummies = pd.get_dummies(frame["kind"]).reindex(columns=prep.categories["kind"]).to_numpy(dtype=float)
    np.testing.assert_array_equal(encoded, np.column_stack([frame[["a", "b"]].to_numpy(), dummies]))
    rows = np.array([7, 2, 9, 0, 4, 5, 10])  # a split: not sorted, not every row
    compact = prep.encode_compact(frame)  # numbers and category codes
    assert compact.shape == encoded.shape and len(compact) == 11
    np.testing.assert_array_equal(compact[rows], encoded[rows])
    np.testing.assert_array_equal(compact[2:9], encoded[2:9])
    unseen = frame.assign(kind=["ftp"] + list(frame["kind"][1:]))  # no category: an all-zero block
    with pytest.warns(UserWarning, match="categories not seen in training"):
        np.testing.assert_array_equal(prep.encode_compact(unseen)[:1], np.r_[encoded[0, :2], 0, 0, 0][None])
    prep.fit_scaling(encoded, rows)
    low, high = encoded[rows].min(0), encoded[rows].max(0)
    np.testing.assert_array_equal(prep.minimum, low)
    np.testing.assert_array_equal(prep.range, np.where(high > low, high - low, 1.0))
    limit = np.where(high > low, tables.SCALED_LIMIT, CONSTANT_LIMIT)  # b constant: clipped at +-1
    shifted = encoded + np.array([0.0, 5.0, 0.0, 0.0, 0.0])  # b off its training value by 5 of its units
    expected = np.clip((shifted[rows] - low) / prep.range, -limit, limit).astype(np.float32)
    np.testing.assert_array_equal(prep.scale(shifted, rows), expected)
    np.testing.assert_array_equal(prep.scale(shifted[rows]), expected)
    assert prep.scale(shifted, rows).flags.c_contiguous and prep.scale(shifted, rows)[:, 1].max() == 1.0


def test_scaled_rows_of_a_column_of_tiny_values_warn_nothing_and_equal_the_exact_scaling():
    import warnings

    import numpy as np
    import pandas as pd

    from dagmm_lightning.data.tables import RawTable, TablePreprocessor

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=50), "tiny": rng.normal(size=50) * 1e-300})
    prep = TablePreprocessor()
    prep.fit_columns(RawTable(frame, None, []))
    encoded = prep.encode_compact(frame)
    prep.fit_scaling(encoded)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # had: numpy's 'overflow encountered in cast' (1 / range past float32)
        fast = prep.scale_rows(frame.to_numpy())
        exact = prep.scale_rows(frame.to_numpy(), exact=True)
    np.testing.assert_array_equal(exact.numpy(), prep.scale(encoded))
    np.testing.assert_allclose(fast.numpy(), exact.numpy(), atol=1e-6)


def test_text_columns_of_numbers_that_lose_digits_or_hold_placeholders_are_warned_about():
    import warnings

    import numpy as np
    import pandas as pd

    from dagmm_lightning.data.tables import infer_symbolic_columns
    from dagmm_lightning.errors import DAGMMWarning

    rng = np.random.default_rng(0)
    codes = pd.DataFrame({"sim": rng.choice(["89014103211118510720", "89014103211118510721"], 40)})
    with pytest.warns(DAGMMWarning, match=r"'sim' holds integers written with more digits than float64 keeps"):
        assert infer_symbolic_columns(codes)[1] == []  # had: one constant column, without a word
    counts = pd.DataFrame({"count": rng.integers(0, 20, 100).astype(object)})
    counts.loc[::4, "count"] = "-"
    with pytest.warns(DAGMMWarning, match=r"'count' holds numbers in 75 % of its rows and text in the others"):
        assert infer_symbolic_columns(counts)[1] == ["count"]  # had: 21 categories, silently
    income = pd.Series(np.round(rng.lognormal(10, 1, 300), 2), dtype=object)
    income[rng.random(300) < 0.6] = "unknown"  # numbers in 40 % of the rows, each its own: not an identifier
    with pytest.warns(DAGMMWarning, match=r"'income' holds numbers in 4\d % of its rows and text in the others"):
        assert infer_symbolic_columns(pd.DataFrame({"income": income}))[1] == ["income"]  # had: no word below 50 %
    rooms = pd.Series(rng.choice([f"room {c}" for c in "ABCDEFGH"], 400), dtype=object)
    rooms[:12] = [str(100 + i) for i in range(12)]  # a few numeric codes among names (3 %): categories as meant
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert infer_symbolic_columns(pd.DataFrame({"room": rooms}))[1] == ["room"]
    same = pd.DataFrame({"a": ["1e20", "1.0e20", "100000000000000000000"] * 10, "b": ["x", "y", "1"] * 10})
    same["dependents"] = rng.choice(["0", "1", "2", "3+"], 30)  # categories: a few numbers, one text
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one number written three ways; text with a few numbers among it
        assert infer_symbolic_columns(same)[1] == ["b", "dependents"]


def test_a_column_that_follows_the_row_order_is_warned_about_as_a_timestamp():
    import warnings

    import numpy as np
    import pandas as pd

    from dagmm_lightning.data.tables import infer_symbolic_columns
    from dagmm_lightning.errors import DAGMMWarning

    rng = np.random.default_rng(0)
    seconds = 1_704_067_200 + 60 * np.arange(200)  # Unix time, a row a minute
    frame = pd.DataFrame({"ts": seconds, "a": rng.normal(size=200)})
    with pytest.warns(DAGMMWarning, match=r"'ts' holds integers that rise \(or fall\) with the row order: a time"):
        infer_symbolic_columns(frame)  # had: used as a feature silently; the next hour's rows all flagged
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sorted values with ties but few of them; the same, shuffled; a file
        infer_symbolic_columns(pd.DataFrame({"level": np.repeat(np.arange(20), 10), "a": rng.normal(size=200)}))
        infer_symbolic_columns(frame.sample(frac=1.0, random_state=0))
        amounts = np.sort(rng.integers(0, 10_000, 200))  # sorted by an ordinary feature (ORDER BY amount)
        infer_symbolic_columns(pd.DataFrame({"amount": amounts, "radius": np.sort(rng.normal(14, 3, 200))}))


def test_column_extremes_over_slices_are_the_two_smallest_and_largest_different_values():
    import numpy as np

    from dagmm_lightning.data.tables import ColumnExtremes

    rng = np.random.default_rng(0)
    rows = np.c_[rng.integers(0, 5, 50), rng.normal(size=50), np.full(50, 2.0)].astype(float)
    extremes = ColumnExtremes()
    for part in np.array_split(rows, [1, 7, 30]):
        extremes.update(part)
    for j in range(2):  # numpy's sorted different values, the reference
        values = np.unique(rows[:, j])
        np.testing.assert_array_equal(extremes.low[:, j], values[:2])
        np.testing.assert_array_equal(extremes.high[:, j], values[::-1][:2])
    assert extremes.low[0, 2] == extremes.high[0, 2] == 2.0 and extremes.low[1, 2] == np.inf  # one value only
    assert extremes.high[1, 2] == -np.inf


@pytest.mark.parametrize("out_of_core", [False, True])
def test_a_column_whose_range_one_value_sets_is_warned_about(tmp_path, out_of_core):
    import re
    import warnings

    import numpy as np
    import pandas as pd

    from dagmm_lightning import AnomalyDataModule
    from dagmm_lightning.errors import DAGMMWarning

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300), "flag": rng.integers(0, 2, 300)})
    frame["label"] = (np.arange(300) < 15).astype(int)
    settings = dict(dataset="table", path=str(tmp_path / "rows.csv"), label_column="label", seed=0)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    data = AnomalyDataModule(**settings, out_of_core=out_of_core)
    data.setup("fit")
    trains = data.splits.train[0]  # (the split depends on the labels and the seed only)
    message = r"^column 'a': one training value, 1e\+06, sets its range nearly alone .* fix or drop that row$"
    for value, warned in ((300.0, False), (1e6, True)):  # a wide gap (0.98 of the range, as real tables have)
        frame.assign(a=np.where(np.arange(300) == trains, value, frame["a"])).to_csv(tmp_path / "rows.csv", index=False)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            again = AnomalyDataModule(**settings, out_of_core=out_of_core)
            again.setup("fit")
            again.setup("validate")  # (the fit command's last validation): the scaling fitted again, not said again
        said = [str(w.message) for w in seen if issubclass(w.category, DAGMMWarning)]
        assert len(said) == warned and all(re.search(message, m) for m in said), said  # had: never (a glitch)


def test_numbers_with_a_typographic_minus_and_unique_timestamps_get_advice_that_fits():
    import numpy as np
    import pandas as pd

    from dagmm_lightning.data.tables import infer_symbolic_columns
    from dagmm_lightning.errors import DataError

    rng = np.random.default_rng(0)
    typeset = pd.DataFrame({"a": [f"{x:.2f}".replace("-", "\u2212") for x in rng.normal(size=300)]})
    with pytest.raises(DataError, match="'a' holds numbers written with a typographic minus .* write them with '-'"):
        infer_symbolic_columns(typeset)  # had: 'an identifier or free text', its example a plain '0.13'
    stamps = pd.DataFrame({"d": pd.date_range("2024-01-01", periods=300, freq="h").astype(str)})
    leave_out = re.escape("""leave it out with ignore_columns '["d"]'""") + "$"  # (predict can write it)
    with pytest.raises(DataError, match=r"holds dates or times as text .*\(e.g. hour, weekday\), or " + leave_out):
        infer_symbolic_columns(stamps)  # had: '... or list it in symbolic_columns': 300 unseen categories
    days = pd.DataFrame({"d": np.repeat(pd.date_range("2024-01-01", periods=3).astype(str), 100)})
    with pytest.raises(
        DataError, match=r"weekday\), list it in symbolic_columns to one-hot encode it, or " + leave_out
    ):
        infer_symbolic_columns(days)  # a few dates that repeat: categories can do
    with pytest.raises(DataError, match=r"'d' holds dates or times; .*\(e.g. hour, weekday\), or " + leave_out):
        infer_symbolic_columns(pd.DataFrame({"d": pd.date_range("2024-01-01", periods=3)}))  # typed


def test_every_column_that_cannot_be_a_feature_is_named_in_one_error():
    # (a user trial: an id, then a date column, each refused in a run of its own)
    import numpy as np
    import pandas as pd

    from dagmm_lightning.data.tables import ignoring, infer_symbolic_columns
    from dagmm_lightning.errors import DataError

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "txn": [f"T{i:05d}" for i in range(300)],
            "amount": rng.normal(size=300),
            "when": pd.date_range("2024-01-01", periods=300, freq="h").astype(str),
            "empty": np.nan,
        }
    )
    with pytest.raises(DataError) as refused, ignoring(["note"]):
        infer_symbolic_columns(frame)
    lines = str(refused.value).split("\n")
    assert lines[0] == "3 columns cannot be features as they are:"
    assert lines[1].startswith("- column 'txn' holds 300 different text values in 300 rows")
    assert lines[2].startswith("- column 'when' holds dates or times as text")
    assert lines[3].startswith("- column 'empty' has no values")
    assert lines[4] == """(or leave them all out with ignore_columns '["note", "txn", "when", "empty"]')"""
    assert len(lines) == 5
    with pytest.raises(DataError, match=r"\(or drop them all from X\)$"):
        infer_symbolic_columns(frame, False, "cast it to 'category'", "drop it from X")
    commas = frame.assign(price=[f"{v:.2f}".replace(".", ",") for v in rng.normal(size=300)])
    with pytest.raises(DataError) as refused:  # a number with a decimal comma is fixed, not left out
        infer_symbolic_columns(commas)
    assert str(refused.value).endswith("""\n(or leave those out with ignore_columns '["txn", "when", "empty"]')""")
    assert "- column 'price' holds numbers written with a comma" in str(refused.value)
    with pytest.raises(DataError, match=r"^column 'when' holds dates or times as text .*'\[\"when\"\]'$"):
        infer_symbolic_columns(frame[["amount", "when"]])  # one such column: its own error, as before
    gaps = frame.assign(amount=np.where(np.arange(300) % 50 == 7, np.nan, frame["amount"]), rate=np.inf)
    gaps["count"] = pd.array([None, *range(299)], dtype="Int64")  # (a nullable integer's missing value too)
    with pytest.raises(DataError) as refused:  # had: the NaN values refused on the next run, once these were fixed
        infer_symbolic_columns(gaps)
    assert str(refused.value).split("\n")[-1] == (
        "Next, training would refuse NaN/inf values in columns 'amount' (6 rows), 'rate' (300 rows), 'count' (1 row): "
        "fill or drop those rows"
    )
    with pytest.raises(DataError, match=r"^column 'when' .*\nNext, training would refuse NaN/inf values in column "):
        infer_symbolic_columns(gaps[["amount", "when"]])


def test_a_missing_value_that_factorize_leaves_at_minus_one_is_its_own_category(monkeypatch):
    """pandas 2 factorizes a pyarrow dictionary column's missing value to -1 whatever use_na_sentinel says;
    indexing with it had named the row by the last category ('u'), silently."""
    import numpy as np
    import pandas as pd

    from dagmm_lightning.data import tables

    values = pd.Series(["v", "u", None, "v"], dtype=object)
    as_pandas_2 = lambda series, use_na_sentinel: (np.array([0, 1, -1, 0]), pd.Index(["v", "u"]))  # noqa: E731
    monkeypatch.setattr(tables.pd, "factorize", as_pandas_2)
    assert tables.category_text(values).tolist() == ["v", "u", "nan", "v"]  # had: 'u' for the missing value


def test_numbers_in_text_and_csv_files_read_exactly_whatever_pandas_rounds(monkeypatch, tmp_path):
    """pandas 2's read_csv and to_numeric round about a third of decimal texts to a neighbouring float;
    the exact readers are asked for there (EXACT_CSV_FLOATS), and text columns' numbers read by float()."""
    import numpy as np
    import pandas as pd

    from dagmm_lightning.data import tables
    from dagmm_lightning.data.loaders import read_user_table

    x = np.random.default_rng(0).normal(size=2000)
    texts = pd.Series([repr(float(v)) for v in x] + ["x"], dtype=object)
    rounding = lambda values, errors: pd.Series(  # noqa: E731 - a reader that rounds, as pandas 2's does
        [np.nextafter(float(v), np.inf) if v != "x" else np.nan for v in values], index=values.index
    )
    monkeypatch.setattr(tables, "EXACT_CSV_FLOATS", {"float_precision": "round_trip"})  # as on pandas 2
    monkeypatch.setattr(tables.pd, "to_numeric", rounding)
    read = tables.numbers_of(texts)
    np.testing.assert_array_equal(read[:-1].to_numpy(), x)  # had: rounded
    assert np.isnan(read.iloc[-1])
    monkeypatch.undo()
    pd.DataFrame({"a": x, "y": 0}).to_csv(tmp_path / "rows.csv", index=False)
    read_with = []
    monkeypatch.setattr(pd, "read_csv", lambda *args, **kwargs: read_with.append(kwargs) or real_read(*args, **kwargs))
    real_read = pd.io.parsers.read_csv
    table = read_user_table(tmp_path / "rows.csv", "y")
    np.testing.assert_array_equal(table.features["a"].to_numpy(), x)  # (pandas 3 or round_trip: exact)
    assert read_with and all(
        k.get("float_precision") == tables.EXACT_CSV_FLOATS.get("float_precision") for k in read_with
    )


@pytest.mark.parametrize("out_of_core", [False, True])
def test_advice_to_ignore_a_column_keeps_the_columns_ignored_already(tmp_path, out_of_core):
    # (had: ignore_columns '["ts"]' after --data.ignore_columns '[id]': copied, it brought the id back)
    import numpy as np
    import pandas as pd

    from dagmm_lightning.data import AnomalyDataModule
    from dagmm_lightning.errors import DataError

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": [f"TX-{i:05d}" for i in range(300)], "a": rng.normal(size=300)})
    frame["ts"] = pd.date_range("2024-01-01", periods=300, freq="h").astype(str)
    frame.to_csv(tmp_path / "t.csv", index=False)
    settings = dict(path=tmp_path / "t.csv", out_of_core=out_of_core)
    with pytest.raises(DataError, match=re.escape("""leave it out with ignore_columns '["id"]'""")):
        AnomalyDataModule("table", **settings).setup("fit")
    with pytest.raises(DataError, match=re.escape("""leave it out with ignore_columns '["id", "ts"]'""")):
        AnomalyDataModule("table", **settings, ignore_columns=["id"]).setup("fit")
    AnomalyDataModule("table", **settings, ignore_columns=["id", "ts"]).setup("fit")  # the advice, taken
