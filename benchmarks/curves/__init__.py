"""Search quality on recorded learning curves: record a table once, then replay many searches on a simulated clock.

``python -m benchmarks.curves record|simulate|report|merge``; the protocol and its results: ``benchmarks/README.md``,
"Search quality on recorded curves".

The modules, one line each:

- ``__main__.py``: the command line: record, simulate, report and merge.
- ``record.py``: train N configs of a space once with ``model.train.fit`` and keep every epoch's val_acc.
- ``table.py``: the project's learning-curve CSV: one row per (config, epoch), ``#`` lines saying how it was made.
- ``opda.py``: learning curves in opda's JSON Lines format, and the space they were sampled from.
- ``testbed.py``: a table of either format ready to replay: its curves, each arm's space, the surrogate.
- ``surrogate.py``: the curve a proposed config would have, predicted from its recorded neighbours (kNN).
- ``simulate.py``: the discrete-event replay: the shipped searcher and scheduler, W workers, a simulated clock.
- ``protocol.py``: the arms, seeds and budgets in trial-epochs, and the summary over seeds.
- ``optuna_arm.py``: plain Optuna (TPE and Hyperband pruner, ask and tell) on the simulated clock.
- ``stats.py``: regret, ranks, reach ratios and paired tests.
- ``figure.py``: the figure: regret over trial-epochs and time, and average rank.
"""
