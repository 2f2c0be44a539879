"""Look inside: what each layer of the network finds in one picture, its layers, its first filters,
and how your runs learned. Only the open tab's content is computed."""
import streamlit as st

from app_pages import common, inside_parts, learning_parts

common.header("inside")
network = inside_parts.network()
model = network.model
if model is None:
    st.stop()

sees, column, filters, learned = st.tabs(
    ["What it sees", "Its layers", "Its first filters", "How your runs learned"], key="inside_tab", on_change="rerun")

with sees:
    if sees.open:
        st.caption("A feature map shows where in the picture one filter found its pattern: bright where it found it "
                   "most. A block's maps share one colour scale, so a dim map is a weak one. Early layers see only a few pixels, so they find edges and colours; later layers combine "
                   "those into parts of things, such as an eye or a wheel.")
        picture = inside_parts.picture()
        if picture is not None:
            found = inside_parts.maps(model, picture)
            st.header("A closer look at one map")
            st.caption("Pick a map to see it large, with the bits of test pictures that make it respond most: "
                       "that is the pattern it looks for.")
            inside_parts.closer_look(network, found)

with column:
    if column.open:
        inside_parts.layers(model)

with filters:
    if filters.open:
        st.caption("The first layer looks straight at the pixels, so its filters can be drawn as tiny pictures, "
                   "each scaled on its own around grey: lighter where a weight is positive, darker where it is "
                   "negative.")
        inside_parts.filters(model)

with learned:
    if learned.open:
        st.caption("Two training runs side by side, epoch by epoch: their first filters, their answers on a few "
                   "test pictures, and their accuracy on each class.")
        learning_parts.compare_view()
