"""Benchmarks, not tests: each measures something and prints a markdown table (``--json PATH`` saves it).

Run from the repository root: ``python -m benchmarks.NAME --help``. What each measured, with its command, date,
commit and machine: ``benchmarks/README.md``.

The modules, one line each:

- ``throughput.py``: training images/s of this project's loop against a torchvision DataLoader baseline.
- ``search_efficiency.py``: anytime curves of the shipped search against its baselines (random, no ASHA), over seeds.
- ``anytime.py``: the incumbent val_acc against trial-epochs and wall time, from a search's Tune results.
- ``anytime_plot.py``: the figure of those curves (HTML and PNG).
- ``vs_hand_written.py``: ``search.run`` against a hand-written Optuna script and the paper's recipe, same wall time.
- ``plain_optuna.py``: that hand-written script: Optuna's TPE and Hyperband pruner, no Ray.
- ``gpu_check.py``: the GPU acceptance check: tests, a training run, throughput, concurrency, a smoke search.
- ``gpu_throughput.py``: its throughput section: a matrix of ``throughput.py`` modes on the GPU.
- ``gpu_concurrency.py``: its concurrency section: 1, 2 and 4 trainings sharing one GPU, with and without MPS.
- ``gpu_report.py``: its report: every row printed and saved as soon as it is made; the time left.
- ``curves/``: search quality on recorded learning curves: record a table once, replay many searches on it.
"""
