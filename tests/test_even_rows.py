"""Pictures shared out in rows of even length (app_pages/even_rows.py); drawn in a browser by
test_browser_inside.py (a block's maps at three widths: the test data set has too few of Evaluate's
mistakes to fill two rows)."""
import math
import re

import pytest

from app_pages import even_rows


@pytest.mark.parametrize("count", [1, 7, 8, 16, 20, 40, 48, 128])
def test_every_choice_shares_the_pictures_out_evenly(count):
    choices = even_rows.per_row_choices(count)
    assert choices[0] == 1 and choices[-1] == count and choices == sorted(set(choices))
    for per_row in choices:
        rows = math.ceil(count / per_row)
        last = count - (rows - 1) * per_row
        assert 0 < last and per_row - last < rows, (count, per_row, last)    # short by less than one a row
    # As few rows as a width allows: every number of rows is one of the choices' (none is left out).
    assert {math.ceil(count / n) for n in choices} == {math.ceil(count / n) for n in range(1, count + 1)}


def test_sixteen_maps_are_8_and_8_at_a_laptop_16_at_a_projector_and_4_by_4_on_a_phone():
    css = even_rows.style("maps", 16, 96)
    default = int(re.search(r"grid-template-columns: repeat\((\d+),", css).group(1))
    widths = {int(n): int(w) for w, n in re.findall(r"@container \(min-width: (\d+)px\).*?repeat\((\d+),", css)}
    assert default == 4
    assert list(widths) == sorted(widths) and list(widths.values()) == sorted(widths.values())  # the widest last

    def per_row(column: int) -> int:
        return max([n for n, w in widths.items() if w <= column] or [default])
    assert (per_row(358), per_row(820), per_row(1460)) == (4, 8, 16)    # a phone, 1280 and 1920 pixels wide
    assert 4 * 96 * even_rows.SHRINK + 3 * even_rows.GAP <= 358         # four fit a phone, a little smaller


def test_the_style_is_confined_to_its_container():
    css = even_rows.style("evaluate_mistakes", 20, 96).removeprefix("<style>").removesuffix("</style>")
    rules = [r for r in re.findall(r"([^{}]+)\{", css) if not r.strip().startswith("@")]
    assert rules and all(r.strip().startswith(".st-key-evaluate_mistakes") for r in rules), rules
