"""What each page is for, and the words the pages use, in plain language.

One place for this text so every page introduces itself the same way (a title,
then one sentence on what the page is for and one on what to try first), and
so the Glossary page and the tests read the same list of terms. No Streamlit
here: common.header() and app_pages/glossary.py draw it.
"""
from __future__ import annotations

from dataclasses import dataclass

from cifar_core.evaluation import SURE_ENOUGH


@dataclass(frozen=True)
class PageGuide:
    title: str
    purpose: str        # one sentence: what the page is for
    try_first: str      # one sentence: the first thing to do on it
    offline: str = ""   # the purpose instead, where only the bundled sample of test pictures is at hand
    offline_try: str = ""   # the first thing to try instead, there
    # (Both may say how the whole data set comes, as `common.header` fills in: {download_it}, a sentence's
    # start; {with_the_download}, after "comes"; {recipe}, the recipe Train opens on.)
    class_try: str = ""     # the first thing to try on a server a class shares (one with a teacher password)
    paused_try: str = ""    # the first thing to try instead while a teacher has paused new runs


PAGES: dict[str, PageGuide] = {
    "home": PageGuide(
        "CIFAR-10 Studio",
        "This app shows, one page at a time, how a computer learns to tell ten kinds of small photo apart.",
        "Open Explore and click any picture to see the model's top three guesses for it."),
    "explore": PageGuide(
        "Explore the data",
        "These are the pictures the model learns from: 50,000 for training and 10,000 kept apart to test it.",
        "Pick a class such as cat, then click a picture to see it large with the model's top guesses.",
        "These are 1,000 of the 10,000 test pictures, 100 of each class, kept apart from the 50,000 the model "
        "learns from; the whole data set comes {with_the_download}."),
    "train": PageGuide(
        "Train a network",
        "Here you teach a new network from scratch and watch its loss fall and its accuracy rise after every epoch.",
        "Keep the Quick recipe and press Start training: it finishes in about a minute.",
        offline_try="{download_it} (training needs its 50,000 pictures), then keep the {recipe} recipe and press "
                    "Start training.",
        class_try="Keep the For a whole class recipe and press Start training: it finishes in about 20 seconds, "
                  "so a whole class's runs take turns on this server within minutes.",
        # (The note under it says new runs are paused and that Start comes back: this says what to do meanwhile.)
        paused_try="Select runs on the board below to compare their curves, or try a finished one on your own "
                   "pictures."),
    "predict": PageGuide(
        "Try it on your own pictures",
        "Give the model any picture and see its answer, how sure it is, and where in the picture it looked.",
        "Upload a photo of an animal or a vehicle, or draw one, and read the bar chart of its ten guesses."),
    "inside": PageGuide(
        "Look inside the network",
        "This page opens the network up and shows what each of its layers finds in one picture.",
        "Open What it sees with a test picture and compare the maps of the first block with those of the last."),
    "evaluate": PageGuide(
        "Where does the model go wrong?",
        "This page measures the model on the 10,000 test pictures it never saw in training, class by class.",
        "Open the Confusion matrix and click the square with the biggest number off the diagonal to see the "
        "pictures it mixes up most.",
        "This page measures the model on the bundled sample of 1,000 test pictures it never saw in training, "
        "class by class."),
    "quiz": PageGuide(
        "You against the model",
        "A game at the projector, the class calling out and one person clicking: you and the model name the "
        "same test pictures.",
        "Answer ten pictures, then switch on Hard mode: a new game on only the pictures the model gets wrong."),
    "glossary": PageGuide(
        "Glossary",
        "The words the other pages use, each explained in a sentence or two.",
        "Look up a word you met on another page; the sidebar's Glossary link brings you back here from any page."),
}


# Term -> explanation, in the order a beginner meets them. The pages' words, not a textbook's.
GLOSSARY: dict[str, str] = {
    "Class": "One of the ten kinds of picture in CIFAR-10: airplane, automobile, bird, cat, deer, dog, frog, "
             "horse, ship and truck. The model's job is to name the class of a picture.",
    "Training set": ("The 50,000 pictures a model learns from (a recipe may use fewer: the \"For a whole class\" "
                     "recipe takes 20,480): once each in a one-epoch recipe, many times over in a longer one. A run "
                     "keeps 1,000 or 2,000 of them aside, never trained on, to make its \"% sure\" honest."),
    "Test set": "The 10,000 pictures kept apart and never used for learning, so that measuring the model on them "
                "shows how it does on pictures it has not seen.",
    "Model": "A network together with the numbers (weights) it learned. The sidebar chooses which model every page "
             "uses: the bundled one, or a run trained on this server (yours or a classmate's).",
    "Network": "A chain of layers that turns a picture's pixels into ten scores, one per class. Also called a "
               "neural network.",
    "airbench": "A family of small networks made to learn CIFAR-10 fast (airbench94 reaches 94% in seconds on a "
                "large graphics card). The Train page's networks named airbench are built the same way at other "
                "sizes, and the bundled model is two of them side by side.",
    "Networks side by side": "Two or more networks, trained apart, that each look at the same picture; their "
                             "scores are averaged before they become probabilities. Each makes its own mistakes, so "
                             "together they are right more often. The bundled model is two networks side by side. To save "
                             f"time, a test picture is shown to the first network alone first: where it is at least "
                             f"{SURE_ENOUGH:.0%} sure, its answer stands (on the 10,000 test pictures, asking the "
                             "second too changed none of those answers), "
                             "and only the rest are shown to both. An uploaded photo larger than 32 x 32 is always shown "
                             "to both.",
    "Layer": "One step of the network. Each layer takes what the previous one found and combines it into something "
             "a little larger: edges, then textures, then parts of things.",
    "Weights": "The numbers inside a layer. Training adjusts them, a little at a time, so the answers get better.",
    "Filter": "A small pattern of weights that a convolution layer slides over the picture, responding where the "
              "picture looks like it. The first layer's filters can be drawn as tiny pictures.",
    "Feature map": "Where in the picture one filter found its pattern: bright where it matched most.",
    "Accuracy": "The share of test pictures the model names correctly. A picture it is unsure of is shown to it "
                "again, mirrored, and the two answers are averaged (see test-time augmentation).",
    "Loss": "A single number saying how wrong the model's answers are, counting how sure it was. Training tries to "
            "make it smaller; lower is better.",
    "Epoch": "One pass over the training pictures, in shuffled batches. A run of 10 epochs shows each picture to "
             "the network about 10 times (the few that do not fill a last batch wait for the next pass).",
    "Batch": "The group of pictures (128 in the Quick recipe) the network looks at before it adjusts its weights once. "
             "Bigger batches mean fewer, steadier steps.",
    "Learning rate": "How big a step the weights take after each batch. Too small and learning is slow; too big and "
                     "the loss jumps about instead of falling.",
    "Optimizer": "The rule that turns the loss into changes of the weights, such as SGD with momentum, Adam or Muon.",
    "Augmentation": "Showing the training pictures slightly changed (mirrored, shifted by a pixel or two) so the "
                    "model learns the object, not the exact pixels. It helps against overfitting.",
    "Overfitting": "When a model learns its training pictures by heart instead of what the classes look like: "
                   "training accuracy keeps rising while test accuracy stalls or falls.",
    "Recipe": "A ready-made set of choices on the Train page, such as Quick, Best or For a whole class: a network "
              "plus all its training settings, chosen to work well together. Change any setting before Start (its seed "
              "and name aside: they are no part of it) and the board calls the run's recipe \"changed\".",
    "Preset": "The command line's word for a recipe (python -m cifar_core train --preset quick).",
    "Seed": "The number that draws a run's starting weights and the order, flips and shifts of its pictures. "
            "Two runs of one recipe with different seeds end a little apart, as any two trainings do; the same "
            "seed and settings repeat a run. The Train page draws a new one for each run unless one is typed "
            "(the command line uses 0 unless told).",
    "Run": "One training of one network, from Start until it finishes or is stopped. Every run is listed on the "
           "Train page and, once finished (or stopped with a model kept), can be chosen as the model in the sidebar.",
    "Probability": "How sure the model is of each class for one picture; the ten add up to 100%. Its answer is the "
                   "class with the highest one.",
    "Confusion matrix": "A table with a row for each true class and a column for each answer. The diagonal holds "
                        "the right answers; every other square counts one kind of mix-up, such as cats called dogs.",
    "Precision": "Of the pictures the model called a class, the share that really were that class.",
    "Recall": "Of the pictures of a class, the share the model named right: the class's own accuracy.",
    "F1": "One number that balances precision and recall; it is high only when both are.",
    "Calibration": "Whether the model's confidence can be trusted: of all the answers given \"80% sure\", about 80% "
                   "should be right. A well-calibrated model is neither overconfident nor too modest. A model "
                   "trained here is calibrated when it is saved: its \"% sure\" is tuned with one number, the "
                   "temperature, which makes every answer a little more or a little less sure, chosen on the "
                   "1,000 or 2,000 training pictures kept aside (one trained with none kept aside is not, and "
                   "Predict and Evaluate say so). Figures \"before calibration\" are the network's own.",
    "Grad-CAM": "A heat map of the parts of the picture that pushed the model most towards its answer (or "
                "towards another class you pick).",
    "Test-time augmentation": "Asking the model about a picture's mirror image too and averaging the two "
                              "answers. It is slightly more accurate than one look. A test picture gets it where "
                              f"the first answer is less than {SURE_ENOUGH:.0%} sure (surer answers almost never "
                              "change), and every model's accuracy in this app is measured this way; the figures taken after each "
                              "epoch of a run (its curves' test dots, the heat map of its classes) are from one "
                              "look. A photo, camera shot or drawing (anything larger than 32 x 32) always "
                              "gets it; a 32 x 32 picture you upload is answered as a test picture is, so a test "
                              "picture saved and uploaded again gets the same answer and the same \"% sure\".",
    "Evening out a photo": "Models trained on CIFAR-10 see photos askew: they say airplane and automobile "
                           "too often, and often cat too (a bird against the sky looks like their airplanes), and "
                           "frog, truck, deer and dog too rarely, and they are surer than they are right. So for a "
                           "picture larger than 32 x 32 (a photo, a camera shot or a drawing) the app turns down "
                           "the classes models over-answer on real photos and turns up the ones they "
                           "under-answer, by amounts measured on 477 photos; that also brings its \"% sure\" on "
                           "photos close to how often it is right. Test pictures and 32 x 32 pictures are "
                           "answered as they are.",
    "Features": "The numbers a network's last layers work out from a picture (dozens to hundreds of them) before its final "
                "layer turns them into the ten scores: what it has found in the picture.",
    "PCA": "A way to squeeze many numbers into two so they can be drawn as a map, keeping as much of their spread as "
           "possible. Explore's map uses it on the network's last features, and says how much of their spread "
           "its two directions keep (for the bundled model, under a third; other models' maps say their own): pictures "
           "apart in the rest can overlap on the map.",
}
