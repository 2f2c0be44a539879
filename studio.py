"""CIFAR-10 Studio's pages: navigation and the sidebar (app.py serves this script).

Each page lives in app_pages/ (not pages/: on a fresh server Streamlit would run a
folder called pages/ as legacy automatic pages, bypassing this navigation for the
first visitor). This file imports no TensorFlow, so the first page appears at once.
"""
import streamlit as st

from app_pages import closer_look, common, serving, upload_budget
from cifar_core import settings

try:
    settings.get()      # app.py refuses to start with a mistyped setting; run on its own, say so on the page
except ValueError as e:
    st.error(f"This server's settings need fixing before it can be used: {e}")
    st.stop()
serving.keep_keras_session()   # no Keras clean-up after every rerun: see app_pages/serving.py
st.set_page_config(page_icon="🖼️", layout="wide")     # its title once the page is known, below

page = st.navigation([
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/explore.py", title="Explore", icon=":material/grid_view:"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/predict.py", title="Predict", icon=":material/photo_camera:"),
    st.Page("app_pages/inside.py", title="Look inside", icon=":material/layers:"),
    st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
    st.Page("app_pages/quiz.py", title="Quiz", icon=":material/sports_esports:"),
    st.Page("app_pages/glossary.py", title="Glossary", icon=":material/menu_book:"),
])
# Each page named in the browser's tab, which is also what a screen reader says first: "CIFAR-10 Studio" on
# every page told them apart by nothing.
st.set_page_config(page_title=f"{page.title} · CIFAR-10 Studio" if page.url_path else "CIFAR-10 Studio")
common.sidebar()
closer_look.close_all_but(page.url_path)     # a closer look left open is not opened again on return
if page.url_path != "predict":     # the only page with an uploader: what this browser uploaded there is let go
    upload_budget.let_go_of_uploads()
page.run()
