import streamlit as st

from cifar_core import data, inference

st.title("CIFAR-10 Studio")
st.markdown(
    "Teach a computer to recognise pictures, and see how it does it. "
    "Start with **Explore** to look at the 60,000 small photos it learns from, in ten classes.")
st.page_link("app_pages/explore.py", label="Explore the data", icon=":material/grid_view:")

card = inference.model_card()
if card:
    st.caption(f"The bundled model ({card['architecture']}) recognises "
               f"{card['test_accuracy']:.1%} of the CIFAR-10 test pictures.")
st.caption("Classes: " + ", ".join(data.CLASS_NAMES) + ".")
