import streamlit as st

from app_pages import common, even_rows
from cifar_core import charts, data, evaluation, inference

common.header("home")
st.markdown(
    "Teach a computer to recognise pictures, and see how it does it. "
    + ("Start with **Explore** to look at a sample of CIFAR-10's small photos in ten classes: 1,000 of its 60,000 "
       "are here until the whole data set is downloaded (see the sidebar)." if common.on_the_sample() else
       "Start with **Explore** to look at CIFAR-10's 60,000 small photos in ten classes: up to 50,000 it learns "
       "from, 10,000 kept apart to test it."))


@st.cache_resource(show_spinner=False)
def one_of_each() -> list:
    sample = data.load_sample()
    return [charts.upscale(sample.x_test[sample.y_test == c][0], 3) for c in range(len(data.CLASS_NAMES))]


with even_rows.rows("home_classes", len(data.CLASS_NAMES), 96):     # 10, 5 + 5, or 4 + 4 + 2; never 8 + 2
    st.image(one_of_each(), caption=list(data.CLASS_NAMES), width=96,   # one size: "automobile" would widen its own
             alt=[f"a small CIFAR-10 photo of {data.with_article(name)}" for name in data.CLASS_NAMES])
# A row that wraps, each link as wide as its words: five equal columns cut them ("Your own pictur") on a tablet.
links = st.container(horizontal=True, wrap=True, gap="medium")
for page, label, icon in ([
        ("app_pages/explore.py", "Explore the data", ":material/grid_view:"),
        ("app_pages/train.py", "Train a network", ":material/model_training:"),
        ("app_pages/predict.py", "Your own pictures", ":material/photo_camera:"),
        ("app_pages/evaluate.py", "Its mistakes", ":material/fact_check:"),
        ("app_pages/quiz.py", "Quiz: you vs it", ":material/sports_esports:")]):
    links.page_link(page, label=label, icon=icon)

card = inference.model_card()
if card:
    st.caption(f"The bundled model ({card['architecture']}, {card['parameters']:,} weights) recognised "
               f"{evaluation.percent(card['test_accuracy'])} of the 10,000 CIFAR-10 test pictures when it was saved, "
               "on the copy of the data set it was trained with.",
               help=f"{evaluation.ACCURACY_DEFINITION} The Evaluate page measures it again on this server's copy, "
                    "which can differ by a few tenths.")
