import pytest

from dagmm_lightning.data.tables import ordinal


@pytest.mark.parametrize(
    "n, expected",
    [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (13, "13th"), (21, "21st")]
    + [(102, "102nd"), (111, "111th"), (1013, "1,013th"), (1_000_001, "1,000,001st")],
)
def test_ordinal_numbers_take_their_english_suffix(n, expected):
    assert ordinal(n) == expected
