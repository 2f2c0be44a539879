"""Pictures in rows of even length, however wide the column.

A list of pictures drawn by `st.image` fills each row and wraps: the last row held what was left, one or
two alone under fifteen (a block's sixteen maps at a 1920-pixel projector) or five under fifteen
(Evaluate's twenty mistakes). Here as few rows as the column's width allows hold the pictures shared out
evenly: n to a row, n = ceil(count / rows), so the last row is at most `rows - 1` short of the others
(sixteen maps are 8 + 8, twenty mistakes 7 + 7 + 6). The column's width is read by a CSS container
query, so the rows follow it, sidebar open or not; where a picture's full size does not fit, it is drawn
smaller (down to SHRINK of it), its pixels kept square and sharp.
"""
import math

import streamlit as st

GAP = 4             # pixels between pictures in a row
SHRINK = 0.85       # how much smaller than its size a picture may be drawn so that one more fits a row
NARROWEST = 358     # pixels: a 390-pixel phone's column, for which the fewest pictures to a row are chosen


def per_row_choices(count: int) -> list[int]:
    """Each number of pictures to a row that shares `count` out evenly over some number of rows, fewest first."""
    return sorted({math.ceil(count / rows) for rows in range(1, count + 1)})


def needs(per_row: int, size: int) -> int:
    """The narrowest column in pixels that holds `per_row` pictures of `size` pixels, drawn down to SHRINK."""
    return math.ceil(per_row * size * SHRINK + (per_row - 1) * GAP)


def style(key: str, count: int, size: int) -> str:
    """The CSS that shares `count` pictures of `size` pixels out in even rows inside the container `key`."""
    choices = per_row_choices(count)
    fewest = max([n for n in choices if needs(n, size) <= NARROWEST] or [1])
    grid = f".st-key-{key} [data-testid=stImage]"
    rules = [f".st-key-{key} {{ container-type: inline-size; }}",
             f"{grid} {{ display: grid; grid-template-columns: repeat({fewest}, minmax(0, {size}px)); "
             f"column-gap: {GAP}px; }}",
             f"{grid} [data-testid=stImageContainer] {{ width: auto; max-width: 100%; }}",
             f"{grid} img {{ max-width: 100%; height: auto; image-rendering: pixelated; }}"]
    # Fewest to a row first: of the rules that hold, the last (the most that fit) wins.
    rules += [f"@container (min-width: {needs(n, size)}px) {{ {grid} {{ grid-template-columns: "
              f"repeat({n}, minmax(0, {size}px)); }} }}" for n in choices if n > fewest]
    return "<style>" + "\n".join(rules) + "</style>"


def rows(key: str, count: int, size: int):
    """A container whose `st.image` lists of `count` pictures of `size` pixels lie in even rows. Its style
    is written once per key and size in a run (the same for every list inside it)."""
    st.html(style(key, count, size))
    return st.container(key=key)
