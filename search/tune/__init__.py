"""Ray Tune's side of a search: adapters on Tune's public interfaces that run the study's trials.

- ``searcher.py``: ``StudySearcher`` (a ``Searcher``): hands Tune the study's unfinished trials, then new
  ones asked of Optuna, and tells the study every epoch and every end.
- ``scheduler.py``: ``StudyASHA`` (a ``FIFOScheduler``): ASHA whose rungs are the study's intermediate values.
- ``trainable.py``: one trial: ``model.train.fit``, reported once per epoch with a checkpoint.
- ``callbacks.py``: the checkpoint each trial last wrote, recorded in the study; a stop any part can ask for.
- ``tuner.py``: the ``Tuner`` assembled from them.

A Tune run holds nothing a search needs afterwards: ``--resume`` starts a new one from the study.
"""
