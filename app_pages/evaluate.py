"""Evaluate: how often a model is right, where it goes wrong, and how two models compare."""
import numpy as np
import pandas as pd
import streamlit as st

from app_pages import common
from cifar_core import charts, evaluation
from cifar_core.data import CLASS_NAMES

st.title("Where does the model go wrong?")
test = common.dataset()
choices = {c.label: c for c in common.model_choices()}
labels = list(choices)
active = common.active_choice().label
picked = st.selectbox("Model", labels, index=labels.index(active), key="evaluate_model")
probabilities = common.test_probabilities(choices[picked])
y_pred = probabilities.argmax(axis=1)
summary = evaluation.summary(probabilities, test.y_test)

st.metric(f"Right on {summary['n']:,} test pictures", f"{summary['accuracy']:.1%}")
overview, errors, sure, compare = st.tabs(["Per class", "Confusion matrix", "Confidence", "Compare two models"])

with overview:
    st.dataframe(pd.DataFrame(evaluation.class_report(test.y_test, y_pred)), hide_index=True,
                 column_config={k: st.column_config.NumberColumn(format="%.3f") for k in ("precision", "recall", "f1")})
    st.caption("Precision: of the pictures it called this class, how many were. "
               "Recall: of the pictures of this class, how many it found. F1 balances the two.")

with errors:
    event = st.altair_chart(charts.confusion(evaluation.confusion_matrix(test.y_test, y_pred)),
                            on_select="rerun", key="evaluate_cell", width="content")
    cell = (event.selection.get("cell") or [None])[0] if event else None
    if cell:
        t, p = CLASS_NAMES.index(cell["true"]), CLASS_NAMES.index(cell["predicted"])
        matches = np.flatnonzero((test.y_test == t) & (y_pred == p))
        shown = matches[:40]
        st.markdown(f"**{len(matches)} pictures of a {cell['true']} "
                    f"that the model called {cell['predicted']}**" + (" (the first 40)" if len(shown) == 40 else ""))
        st.image([charts.upscale(test.x_test[i], 3) for i in shown],
                 caption=[f"{probabilities[i, p]:.0%} sure" for i in shown])
    else:
        st.caption("Darker squares hold more of the row's pictures. Click a square to see them.")
    st.subheader("Its most confident mistakes")
    worst = evaluation.confident_mistakes(probabilities, test.y_test, 20)
    st.image([charts.upscale(test.x_test[i], 3) for i in worst],
             caption=[f"{CLASS_NAMES[test.y_test[i]]}, said {CLASS_NAMES[y_pred[i]]} ({probabilities[i].max():.0%})"
                      for i in worst])

with sure:
    st.altair_chart(charts.reliability(evaluation.calibration(probabilities, test.y_test)), width="stretch")
    gap = evaluation.expected_calibration_error(probabilities, test.y_test)
    st.caption("Each dot groups answers given with similar confidence; bigger dots hold more answers. Below the "
               "dashed line, the model is more sure of itself than it should be; above it, too modest. "
               f"On average its \"% sure\" is {gap:.1%} away from how often it is right.")

with compare:
    others = [label for label in labels if label != picked]
    if not others:
        st.caption("Train a model on the Train page to compare it with this one.")
    else:
        other = st.selectbox("Compare with", others, key="evaluate_other")
        other_probabilities = common.test_probabilities(choices[other])
        other_pred = other_probabilities.argmax(axis=1)
        other_summary = evaluation.summary(other_probabilities, test.y_test)
        one, two = st.columns(2)
        one.metric(picked, f"{summary['accuracy']:.1%}")
        two.metric(other, f"{other_summary['accuracy']:.1%}")
        st.altair_chart(charts.compare_classes({picked: summary["per_class"], other: other_summary["per_class"]}),
                        width="stretch")
        for title, mask in ((f"Right by {picked}, wrong by {other}", (y_pred == test.y_test) & (other_pred != test.y_test)),
                            (f"Right by {other}, wrong by {picked}", (y_pred != test.y_test) & (other_pred == test.y_test))):
            shown = np.flatnonzero(mask)[:20]
            st.markdown(f"**{title}: {mask.sum()} pictures**")
            if len(shown):
                st.image([charts.upscale(test.x_test[i], 3) for i in shown],
                         caption=[CLASS_NAMES[test.y_test[i]] for i in shown])
