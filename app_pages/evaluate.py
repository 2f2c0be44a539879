"""Evaluate: how often a model is right, where it goes wrong, and how two models compare."""
import functools
import numpy as np
import pandas as pd
import streamlit as st

from app_pages import chart_specs, closer_look, common
from cifar_core import charts, evaluation, inference
from cifar_core.data import CLASS_NAMES, with_article

common.header("evaluate")
test = common.dataset()
choices = common.model_choices()
active = common.active_choice()
# The box starts at the sidebar's model and follows it whenever it changes there ("every page"); a
# model picked here stays until then.
if st.session_state.get("evaluate_follows") != active.key:
    st.session_state["evaluate_follows"] = active.key
    common.pick("evaluate_model", active)
chosen = common.model_box("Model", "evaluate_model", choices, active)
picked = chosen.label
probabilities = common.test_probabilities(chosen, test)
y_pred = probabilities.argmax(axis=1)
summary = evaluation.summary(probabilities, test.y_test)
PICTURE = 96        # every small picture on this page: 32 x 32 drawn 3 times larger, whatever its caption


def alts(indices) -> list[str]:
    return [f"test picture #{test.test_number(i)}, {with_article(CLASS_NAMES[test.y_test[i]])}" for i in indices]


def pictures(indices, captions, key: str) -> None:
    """Test pictures in even rows, each at PICTURE pixels (smaller where that lets one more into a row)
    with its caption."""
    closer_look.row(test.x_test[indices], captions, alts(indices), PICTURE // test.x_test.shape[2], key)


st.metric(f"Right on {summary['n']:,} test pictures", evaluation.percent(summary["accuracy"]),
          help=evaluation.ACCURACY_DEFINITION)
saved_as = chosen.accuracy       # the figure in the model's label, measured when it was saved
if not len(test.y_train):   # the bundled sample has test pictures only
    st.caption(f"Measured on the bundled sample of {summary['n']:,} test pictures, not on the whole test set "
               "of 10,000, so it can differ from the figure in the sidebar.")
elif saved_as is not None and evaluation.percent(saved_as) != evaluation.percent(summary["accuracy"]):
    st.caption(f"Measured here on this server's {summary['n']:,} test pictures. The "
               f"{evaluation.percent(saved_as)} in the model's name was measured when it was saved, on the test "
               "pictures it was saved with (another copy of the data set), so the two differ.")

# Lazy tabs: only the open tab's part runs, so the comparison model is tested only when asked for.
overview, errors, sure, compare = st.tabs(["Per class", "Confusion matrix", "Confidence", "Compare two models"],
                                          key="evaluate_tab", on_change="rerun")

if overview.open:
    with overview:
        report = pd.DataFrame(evaluation.class_report(test.y_test, y_pred))
        shares = ["precision", "recall", "f1"]
        report[shares] *= 100       # the figures themselves, as the table's download keeps them
        # Shown in percent with one decimal, as every other figure in the app; none short of 100 printed as
        # 100; one a class never named has not "None" (Python's word) but the app's dash. (The table draws a
        # missing figure as its `placeholder`, not as the Styler's text for it.)
        shown = report.style.format(
            lambda v: "–" if pd.isna(v) else f"{evaluation.kept_off_certainty(v, 1):.1f}%", subset=shares)
        st.dataframe(shown, hide_index=True, placeholder="–", column_config={
            "class": "Class",
            "precision": st.column_config.Column(
                "Precision (%)", help="Of the pictures it called this class, the share that were."),
            "recall": st.column_config.Column(
                "Recall: right (%)",
                help="Of the test pictures of this class, the share it named right: the class's own accuracy."),
            "f1": st.column_config.Column("F1 (%)", help="Precision and recall in one figure (their harmonic mean)."),
            "images": st.column_config.NumberColumn("Test pictures", format="localized")})
        st.caption("Precision: of the pictures it called this class, how many were that class. "
                   "Recall: of the pictures of this class, how many it named right. F1 balances the two."
                   + (" A class it never named has no precision (–), and an F1 of 0." if report["precision"].isna().any()
                      else ""))

if errors.open:
    with errors:
        shown_as = st.segmented_control("Squares show", ["Pictures", "% of each true class"], default="Pictures",
                                        required=True, key="evaluate_confusion_as") or "Pictures"
        counts = evaluation.confusion_matrix(test.y_test, y_pred)
        # The click is read before the matrix is drawn, so that the frame is around the square just clicked.
        key = closer_look.take_click("evaluate_cell", "cell", closer_look.EVALUATE, closer_look.square)
        square = st.session_state.get(closer_look.EVALUATE)
        looking = square is not None and closer_look.is_open(closer_look.EVALUATE)
        right = int(np.trace(counts))
        chart_specs.hold_place(key, charts.CONFUSION_HELD)
        chart_specs.confusion(counts, shown_as != "Pictures", square, on_select="rerun", key=key, width="stretch",
                              alt="Confusion matrix: a 10 by 10 grid of squares, a row for each true class and a "
                                  "column for each class the model said, each holding "
                                  + ("its number of test pictures" if shown_as == "Pictures" else "its share of the row")
                                  + f". The diagonal, {right:,} of {int(counts.sum()):,} pictures, is the right "
                                  "answers. Choose a square in the box below to see its pictures.")
        # The same choice from the keyboard: every square, row by row as the matrix reads; empty once the
        # square's pictures are closed, so that choosing it again opens them again.
        st.session_state["evaluate_box"] = square[0] * len(CLASS_NAMES) + square[1] if looking else None
        n = len(CLASS_NAMES)
        squares = {c: f"{CLASS_NAMES[c // n]} called {CLASS_NAMES[c % n]} "
                      f"({evaluation.counted(int(counts[divmod(c, n)]), 'picture')})" for c in range(n * n)}
        st.selectbox("Show the pictures of the square", list(squares), index=None, key="evaluate_box",
                     placeholder="Choose a square, or click one in the matrix", on_change=closer_look.box_chosen,
                     args=("evaluate_box", "evaluate_cell", closer_look.EVALUATE, functools.partial(chart_specs.in_square, n)),
                     format_func=squares.get)     # a dict's, not a lambda of this page's run (chart_specs.in_split)
        st.caption("A row is every test picture of one class; darker squares hold more of the row. "
                   "Click a square, or choose it in the box, to see its pictures.")
        if looking:
            t, p = square
            matches = np.flatnonzero((test.y_test == t) & (y_pred == p))
            shown = matches[:40]
            closer_look.show_pictures(
                f"{evaluation.counted(len(matches), 'picture')} of {with_article(CLASS_NAMES[t])} that the model "
                f"called {CLASS_NAMES[p]}" + (" (the first 40)" if len(matches) > 40 else ""),
                test.x_test[shown], [f"{evaluation.sure(probabilities[i, p])} sure" for i in shown], alts(shown),
                PICTURE // test.x_test.shape[2])
        st.header("Its most confident mistakes")
        worst = evaluation.confident_mistakes(probabilities, test.y_test, 20)
        if not len(worst):
            st.caption("It gets every test picture right: there are no mistakes to show.")
        else:
            pictures(worst, [f"{CLASS_NAMES[test.y_test[i]]}, said {CLASS_NAMES[y_pred[i]]} ({evaluation.sure(probabilities[i].max())} sure)"
                             for i in worst], key="evaluate_mistakes")

if sure.open:
    with sure:
        gap = evaluation.expected_calibration_error(probabilities, test.y_test)
        st.altair_chart(charts.reliability(evaluation.calibration(probabilities, test.y_test)), width="stretch",
                        alt="Line chart of how sure the model was against how often it was right, a dot for each "
                            "group of answers, sized by how many it holds, beside a dashed diagonal where the two "
                            f"are equal. On average its \"% sure\" is {gap * 100:.1f} points away from how often "
                            "it is right.")
        st.caption("Each dot groups answers given with similar confidence; bigger dots hold more answers, and a "
                   f"faint one fewer than {charts.FEW_ANSWERS}, too few to say much. Below the "
                   "dashed line, the model is more sure of itself than it should be; above it, too modest. "
                   f"On average its \"% sure\" is {gap * 100:.1f} points away from how often it is right (say, "
                   "72% sure where it is right 70% of the time is 2 points)"
                   + (f", over {len(test.y_test):,} pictures: with this few, most groups hold a handful, and "
                      "the line zig-zags more than the model's confidence does." if len(test.y_test) < 5_000 else "."))
        if inference.temperature_for(chosen.path, missing=None) is None:
            st.caption("This model has no temperature fitted (none was saved with it, as when no training "
                       "pictures were kept aside for one): its \"% sure\" is the network's own, never tuned to how "
                       "often it is right.")

with compare:
    others = [c for c in choices if c.key != chosen.key]
    if not others:
        st.caption("Train a model on the Train page to compare it with this one.")
    elif compare.open:
        other_choice = common.model_box("Compare with", "evaluate_other", others, others[0])
        # The two by name, without the accuracy in their labels: that was measured when each was saved, and
        # beside the figures measured here ("Bundled model (92.1%)" over 92.7% on the sample) it read as a
        # second accuracy. Two runs of one name are told apart by their labels.
        first, other = ((chosen.name, other_choice.name) if chosen.name != other_choice.name
                        else (picked, other_choice.label))
        other_probabilities = common.test_probabilities(other_choice, test)
        other_pred = other_probabilities.argmax(axis=1)
        other_summary = evaluation.summary(other_probabilities, test.y_test)
        one, two = st.columns(2)
        shown = evaluation.told_apart(summary["accuracy"], other_summary["accuracy"])
        # Labels are Markdown: a run's name is shown as typed, never as a link or a picture.
        one.metric(common.plain(first), shown[0], help=evaluation.ACCURACY_DEFINITION)
        two.metric(common.plain(other), shown[1], help=evaluation.ACCURACY_DEFINITION)
        # Two figures side by side read as "the first is better" whatever the gap: say when chance could make it.
        first_only = (y_pred == test.y_test) & (other_pred != test.y_test)
        second_only = (y_pred != test.y_test) & (other_pred == test.y_test)
        only_first, only_second = int(first_only.sum()), int(second_only.sum())
        gap = (f"{evaluation.counted(only_first, 'picture')} only {common.plain(first)} gets right, "
               f"{evaluation.counted(only_second, 'picture')} only {common.plain(other)} does. ")
        if only_first == only_second:
            gap += "On these test pictures they are equally good."
        elif evaluation.beyond_chance(only_first, only_second):
            better = first if only_first > only_second else other
            gap += (f"A gap this large seldom comes by chance: on pictures like these, {common.plain(better)} "
                    "is the better model.")
        else:
            gap += ("A gap this small could come by chance alone, from which pictures happen to be in the test "
                    "set: another set of test pictures could reverse it, so call them about as good.")
        st.caption(gap)
        st.altair_chart(charts.compare_classes({first: summary["per_class"], other: other_summary["per_class"]}),
                        width="stretch",
                        alt=f"Bar chart of each class's share of test pictures named right by {first} and by "
                            f"{other}: " + "; ".join(f"{name} {evaluation.percent(summary['per_class'][name])} and "
                                                     f"{evaluation.percent(other_summary['per_class'][name])}"
                                                     for name in CLASS_NAMES) + ".")
        for (title, mask), key in zip(((f"Right by {first}, wrong by {other}", first_only),
                                       (f"Right by {other}, wrong by {first}", second_only)),
                                      ("evaluate_first_only", "evaluate_second_only")):
            shown = np.flatnonzero(mask)[:20]
            st.markdown(f"**{common.plain(title)}: {evaluation.counted(int(mask.sum()), 'picture')}**"
                        + (" (the first 20)" if mask.sum() > 20 else ""))
            if len(shown):
                pictures(shown, [CLASS_NAMES[test.y_test[i]] for i in shown], key)
