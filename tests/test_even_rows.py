"""Pictures shared out in rows of even length (app_pages/even_rows.py); drawn in a browser by
test_browser_inside.py (a block's maps at three widths: the test data set has too few of Evaluate's
mistakes to fill two rows)."""
import re

import pytest

from app_pages import even_rows


def rows_at(count: int, size: int, column: int) -> list[int]:
    """The rows' lengths the style gives `count` pictures of `size` pixels in a column of `column` pixels, as
    a browser applies it: the first rule, then each container query that holds, the last winning."""
    css = even_rows.style("pictures", count, size)
    per_row = int(re.search(r"grid-template-columns: repeat\((\d+),", css).group(1))
    for width, n in re.findall(r"@container \(min-width: (\d+)px\).*?repeat\((\d+),", css):
        if int(width) <= column:
            per_row = int(n)
    full, last = divmod(count, per_row)
    return [per_row] * full + ([last] if last else [])


@pytest.mark.parametrize("count, size, phone, laptop, projector", [
    (16, 96, [4, 4, 4, 4], [8, 8], [16]),                 # a block's maps
    (10, 96, [4, 4, 2], [5, 5], [10]),                     # Home's classes: never 8 + 2, nor 3 + 3 + 3 + 1
    (20, 96, [4] * 5, [7, 7, 6], [10, 10]),                # Evaluate's mistakes: never 15 + 5
    (48, 64, [6] * 8, [12] * 4, [24, 24]),                 # the fixed first layer's filters
    (8, 96, [4, 4], [8], [8]),
    (1, 96, [1], [1], [1]),
])
def test_the_rows_at_a_phone_a_laptop_and_a_projector(count, size, phone, laptop, projector):
    """Columns of 358 (a 390-pixel phone), 820 (1280 pixels, sidebar open) and 1460 (1920 pixels)."""
    assert (rows_at(count, size, 358), rows_at(count, size, 820), rows_at(count, size, 1460)) == (phone, laptop, projector)


@pytest.mark.parametrize("count", range(1, 130))
def test_a_last_row_is_at_least_half_full_at_any_width(count):
    for column in range(200, 2400, 20):
        lengths = rows_at(count, 64, column)
        assert 2 * lengths[-1] >= lengths[0], (count, column, lengths)
        assert lengths[0] * 64 * even_rows.SHRINK + (lengths[0] - 1) * even_rows.GAP <= max(column, even_rows.PHONE) \
            or lengths[0] == rows_at(count, 64, 0)[0]       # what fits, or the fewest, drawn smaller


def test_the_style_is_confined_to_its_container():
    css = even_rows.style("evaluate_mistakes", 20, 96).removeprefix("<style>").removesuffix("</style>")
    rules = [r for r in re.findall(r"([^{}]+)\{", css) if not r.strip().startswith("@")]
    assert rules and all(r.strip().startswith(".st-key-evaluate_mistakes") for r in rules), rules


def test_a_key_that_is_no_css_class_is_refused():
    with pytest.raises(ValueError):
        even_rows.style("conv2d/1", 4, 64)


def test_framed_pictures_have_a_hairline_a_white_one_is_seen_by():
    """Look inside's filters: one that weighs the colours alike is drawn near white and vanished into the page."""
    from test_charts import contrast
    assert "box-shadow" not in even_rows.style("home_classes", 10, 96)
    framed = even_rows.style("inside_filters_0", 48, 64, framed=True)
    assert f".st-key-inside_filters_0 [data-testid=stImage] img {{" in framed and \
        f"box-shadow: 0 0 0 1px {even_rows.FRAME};" in framed
    assert contrast(even_rows.FRAME, "#ffffff") >= 3
