import streamlit as st

from cifar_core import charts, data, inference

st.title("CIFAR-10 Studio")
st.markdown(
    "Teach a computer to recognise pictures, and see how it does it. "
    "Start with **Explore** to look at the 60,000 small photos it learns from, in ten classes.")


@st.cache_resource(show_spinner=False)
def one_of_each() -> list:
    sample = data.load_sample()
    return [charts.upscale(sample.x_test[sample.y_test == c][0], 2) for c in range(len(data.CLASS_NAMES))]


st.image(one_of_each(), caption=list(data.CLASS_NAMES))
links = st.columns(5)
for column, (page, label, icon) in zip(links, [
        ("app_pages/explore.py", "Explore the data", ":material/grid_view:"),
        ("app_pages/train.py", "Train a network", ":material/model_training:"),
        ("app_pages/predict.py", "Your own pictures", ":material/photo_camera:"),
        ("app_pages/evaluate.py", "Its mistakes", ":material/fact_check:"),
        ("app_pages/quiz.py", "Quiz: you vs it", ":material/sports_esports:")]):
    column.page_link(page, label=label, icon=icon)

card = inference.model_card()
if card:
    st.caption(f"The bundled model ({card['architecture']}, {card['parameters']:,} weights) recognises "
               f"{card['test_accuracy']:.1%} of the 10,000 CIFAR-10 test pictures.")
