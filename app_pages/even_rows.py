"""Pictures in rows of even length, however wide the column.

A list of pictures drawn by `st.image` fills each row and wraps: the last row held what was left, one or
two alone under fifteen (a block's sixteen maps at a 1920-pixel projector) or five under fifteen
(Evaluate's twenty mistakes). Here as few rows as the column's width allows hold the pictures shared out
evenly: n to a row, where the last row is at least half full (sixteen maps are 16 or 8 + 8, twenty
mistakes 10 + 10 or 7 + 7 + 6, ten classes 10 or 5 + 5). The column's width is read by CSS container
queries, so the rows follow it, sidebar open or not. A picture is drawn smaller where that lets one more
into a row (down to SHRINK of its size; on a phone, down to PHONE_SHRINK), never larger, its pixels kept
sharp. Not smaller than that: at 68 pixels a caption such as "automobile" broke in the middle of the word.
"""
import math
import re

import streamlit as st

GAP = 4             # pixels between pictures in a row
SHRINK = 0.85       # how much smaller than its size a picture may be drawn so that one more fits a row
PHONE_SHRINK = 0.75     # the same for the fewest to a row, chosen for a phone's column
PHONE = 358         # pixels: a 390-pixel phone's column


def per_row_choices(count: int) -> list[int]:
    """The numbers of pictures to a row that share `count` out evenly, fewest first: each is the most a row
    holds for some number of rows, and leaves the last row at least half full."""
    choices = set()
    for rows in range(1, count + 1):
        n = math.ceil(count / rows)
        if 2 * (count - (math.ceil(count / n) - 1) * n) >= n:
            choices.add(n)
    return sorted(choices)


def needs(per_row: int, size: int, shrink: float = SHRINK) -> int:
    """The narrowest column in pixels that holds `per_row` pictures of `size` pixels, drawn down to `shrink`."""
    return math.ceil(per_row * size * shrink + (per_row - 1) * GAP)


FRAME = "#949494"     # a hairline round each picture where some are nearly white: 3:1 on white, as a boundary needs


def style(key: str, count: int, size: int, framed: bool = False) -> str:
    """The CSS that shares `count` pictures of `size` pixels out in even rows inside the container `key`;
    `framed`, each with a hairline round it (outside it: the picture and the rows keep their sizes)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", key):    # as Streamlit writes it into the container's class
        raise ValueError(f"not a key for a CSS class: {key!r}")
    choices = per_row_choices(count)
    fewest = max([n for n in choices if needs(n, size, PHONE_SHRINK) <= PHONE] or [1])
    grid = f".st-key-{key} [data-testid=stImage]"
    rules = [f".st-key-{key} {{ container-type: inline-size; }}",
             f"{grid} {{ display: grid; grid-template-columns: repeat({fewest}, minmax(0, {size}px)); "
             f"column-gap: {GAP}px; }}",
             f"{grid} [data-testid=stImageContainer] {{ width: auto; max-width: 100%; }}",
             f"{grid} img {{ max-width: 100%; height: auto; image-rendering: pixelated;"
             + (f" box-shadow: 0 0 0 1px {FRAME};" if framed else "") + " }"]
    # Fewest to a row first: of the rules that hold, the last (the most that fit) wins.
    rules += [f"@container (min-width: {needs(n, size)}px) {{ {grid} {{ grid-template-columns: "
              f"repeat({n}, minmax(0, {size}px)); }} }}" for n in choices if n > fewest]
    return "<style>" + "\n".join(rules) + "</style>"


def rows(key: str, count: int, size: int, framed: bool = False):
    """A container whose `st.image` list of `count` pictures, each `size` pixels wide (given to `st.image` as
    its width, so that none is drawn larger), lies in even rows (`framed`: see `style`)."""
    st.html(style(key, count, size, framed))
    return st.container(key=key)
