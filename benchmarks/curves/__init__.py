"""Search quality on recorded learning curves: record a table once, then replay many searches on a simulated clock.

``python -m benchmarks.curves record|simulate|report|merge|warmstart``; the protocol and its results:
``benchmarks/README.md``, "Search quality on recorded curves".

The modules, one line each:

- ``__main__.py``: the command line: record, simulate, report and merge.
- ``record.py``: train N configs of a space once with ``model.train.fit`` and keep every epoch's val_acc.
- ``table.py``: the project's learning-curve CSV: one row per (config, epoch), ``#`` lines saying how it was made.
- ``formats.py``: a tuning table of any known format, read by the adapter its content calls for.
- ``opda.py``: learning curves in opda's JSON Lines format (its AlexNet table), and the space they were sampled from.
- ``opda_steps.py``: opda's fine-tuning format (its DeBERTa tables): curves in optimizer steps.
- ``testbed.py``: a table ready to replay: its curves, each arm's space, the surrogate.
- ``surrogate.py``: the curve a proposed config would have, predicted from its recorded neighbours (kNN).
- ``modes.py``: how a proposal gets its curve: the surrogate's, or the nearest recorded run's (with optional noise).
- ``simulate.py``: the discrete-event replay: the shipped searcher and scheduler, W workers, a simulated clock.
- ``protocol.py``: the arms, seeds and budgets (in the table's resource: epochs or steps), and the summary over seeds.
- ``optuna_arm.py``: plain Optuna (TPE and Hyperband pruner, ask and tell) on the simulated clock.
- ``topk_arm.py``: the one-rung top-k baseline: every trial to one rung, the top k finished (arXiv 2307.15422).
- ``warm.py``: issue 34's warm start: a cheap search of short runs, mapped in by the shipped ``--warm-start`` code.
- ``stats.py``: regret, ranks, reach ratios, paired tests and Holm's correction.
- ``figure.py``: the figure: regret over trial-epochs and time, and average rank.
"""
