"""What the server does between reruns, kept to what this app needs.

After every script run, fragment runs included, Streamlit calls
`keras.backend.clear_session()` whenever Keras has been imported, for apps that
build a model in the script body and would otherwise pile up layers. This app
builds none in the server: models load once per process (common._model, kept on
a shelf for the whole server) and answer through one tf.function. For it, the clearing is
pure cost: a full garbage collection of the whole heap (TensorFlow's included)
and TensorFlow's kernel cache emptied, so the next prediction re-instantiates its
kernels. Measured on 2 shared cores with the data set and the bundled model
loaded: 0.5 s for the clearing, and the next prediction 155-290 ms instead of
23-36 ms, after every rerun of every session (a watched Train page reruns every 2.5 s).

`keep_keras_session()` replaces that clean-up with the rest of it (matplotlib's
figures are still closed). The other full collection Streamlit makes after each
run is turned off in .streamlit/config.toml (`runner.postScriptGC = false`):
Python's own generational collector still runs as memory is allocated.

`freeze_loaded()`, called once the data set or a model is loaded, takes everything alive
at that moment (TensorFlow, Keras, the model's graph: about 300,000 objects) out of
that collector's view with `gc.freeze()`. Its occasional full collection walked them
all, 0.2-0.5 s of a 2-core server's CPU each time, charged to whichever visitor's
rerun happened to trigger it; afterwards a full collection walks only what visitors
made since. Each freeze first unfreezes and collects everything: a Keras model is full
of reference cycles (a layer and its nodes point at each other), so a model the cache
has dropped (a run's newer checkpoint, a ninth model chosen) is freed only by a full
collection that can see it. Left frozen, every dropped model stayed in memory for good:
25-45 MB of the bundled pair's each time, measured. The price is one full collection
per load, which already takes seconds.
"""
from __future__ import annotations

import gc
import sys


def _close_matplotlib_figures() -> None:
    """The part of Streamlit's clean-up this app keeps: figures a page drew with pyplot are closed."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


def keep_keras_session() -> bool:
    """Stop Streamlit from clearing Keras' session after every run; True when the clean-up was found
    (an older or newer Streamlit without it has nothing to stop)."""
    try:
        from streamlit.runtime.scriptrunner import script_runner
    except ImportError:
        return False
    if not callable(getattr(script_runner, "_clean_problem_modules", None)):
        return False
    script_runner._clean_problem_modules = _close_matplotlib_figures
    return True


def freeze_loaded() -> None:
    """Take every object alive now out of the garbage collector's full collections (module docstring):
    call it right after something big and long-lived (the data set, a model) has been loaded."""
    gc.unfreeze()       # what an earlier freeze kept and has since been let go (a dropped model) ...
    gc.collect()        # ... goes now, with what is garbage already, rather than frozen with the rest
    gc.freeze()
