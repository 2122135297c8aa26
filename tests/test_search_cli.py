"""The search refuses what would break on a real cluster, in one line, before any trial starts:
a held --out, changed flags on --resume, unreachable heads, Ray Client; and weights and user
spaces that reach the trials."""

import fcntl
import json
import os
import subprocess
import sys
import textwrap
import time

import optuna
import pandas as pd
import pytest
import torch
import torchvision

from search.cli import config_from_args, get_args_parser
from search.lock import LOCK_NAME, OutLock
from search.ray_start import check_address
from search.run import main
from tests._searches import run_search


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    return err[0]


def test_a_held_out_folder_is_refused_and_left_alone(tmp_path, capsys, image_folder):
    out = tmp_path / "o"
    out.mkdir()
    (out / "study.db").write_bytes(b"a running search's study")
    # Another process holds the lock, the way a running search does.
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys
        fd = os.open({str(out / LOCK_NAME)!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"%d" % os.getpid())
        print("locked", flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for extra in ([], ["--resume"]):
            argv = ["--space", "smoke", "--data", str(image_folder), "--out", str(out), *extra]
            assert main(get_args_parser().parse_args(argv)) == 2
            line = one_error_line(capsys)
            assert "in use by a running search" in line and f"pid {holder.pid}" in line
        assert (out / "study.db").read_bytes() == b"a running search's study"
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # Released with its holder (even a SIGKILLed one): the next search gets it.
    with OutLock(out):
        fd = os.open(out / LOCK_NAME, os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)


def test_resume_refuses_changed_search_flags_by_name(tmp_path, capsys, image_folder):
    parse = get_args_parser().parse_args

    def config(*flags):
        return config_from_args(parse(["--space", "smoke", "--data", str(image_folder), *flags]))

    saved = config("--num-samples", "8", "--max-epochs", "4")
    same = config("--num-samples", "8", "--max-epochs", "4", "--verbose", "0", "--no-report", "--out", "x")
    assert same.changed_flags(saved) == []  # --verbose, --no-report, --out and such may differ
    more = config("--num-samples", "12", "--max-epochs", "4", "--max-concurrent", "3", "--no-amp")
    assert [c.split()[0] for c in more.changed_flags(saved)] == ["--num-samples", "--max-concurrent", "--no-amp"]
    assert "--no-amp (was off, now on)" in more.changed_flags(saved)
    # Through main: a resumable search whose study says 8 samples (and no search.json at all).
    from search.state import record_start
    from search.study import create_study, open_storage

    out = tmp_path / "o"
    out.mkdir()
    record_start(create_study(open_storage(out), "smoke"), saved.to_dict(), {}, resume=False)
    argv = ["--space", "smoke", "--data", str(image_folder), "--out", str(out), "--num-samples", "12",
            "--max-epochs", "4", "--resume"]
    assert main(parse(argv)) == 2
    line = one_error_line(capsys)
    assert "--num-samples (was 8, now 12)" in line and "another --out" in line


def test_an_unreachable_head_fails_in_one_line_within_seconds(capsys, image_folder, tmp_path):
    t0 = time.monotonic()
    argv = ["--space", "smoke", "--data", str(image_folder), "--out", str(tmp_path / "o"), "--address", "127.0.0.1:1"]
    assert main(get_args_parser().parse_args(argv)) == 2
    assert time.monotonic() - t0 < 60
    line = one_error_line(capsys)
    assert "127.0.0.1:1" in line and "no Ray head answers" in line
    with pytest.raises(Exception, match="ray job submit"):
        check_address("ray://10.0.0.1:10001")


SPACE_FILE = '''
def wide(trial):
    """A user's space, outside the repository."""
    trial.suggest_categorical("arch", ["resnet20"])
    trial.suggest_float("lr", 0.05, 0.2, log=True)
    trial.suggest_categorical("batch_size", [64])
    trial.suggest_categorical("augment", ["flip"])


wide.recipe = {"lr": 0.1}


def typo(trial):
    trial.suggest_float("learning_rate", 0.01, 0.1)
'''


@pytest.mark.slow
def test_a_user_space_file_runs_a_search(tmp_path_factory, image_folder):
    space_file = tmp_path_factory.mktemp("elsewhere") / "my_spaces.py"
    space_file.write_text(SPACE_FILE)
    out = tmp_path_factory.mktemp("runs") / "user"
    proc = run_search("--space", f"{space_file}:wide", "--data", str(image_folder), "--out", str(out),
                      "--val-size", "200", "--cpus-per-trial", "1", "--num-samples", "2", "--max-epochs", "1",
                      "--grace-period", "1", "--no-retrain", "--no-report")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study = optuna.load_study(study_name="wide", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 2 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert study.trials[0].params["lr"] == 0.1  # its recipe went first
    assert all(0.05 <= t.params["lr"] <= 0.2 for t in study.trials)
    assert study.metric_names == ["val_acc"]
    # A space that suggests a name RunConfig lacks: one line with the valid fields, before Ray.
    proc = run_search("--space", f"{space_file}:typo", "--data", str(image_folder), "--out", str(out.parent / "t"))
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "learning_rate" in line and "valid:" in line and "weight_decay" in line


@pytest.mark.slow
def test_a_weights_file_reaches_trials_that_cannot_open_it(tmp_path, image_folder):
    weights = tmp_path / "resnet18-mine.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    # The space runs on the driver when the search asks for a trial (in study.db), after the
    # weights were loaded and before the trial starts: it removes the file, as on a worker node
    # that never had it. (Sampled on an in-memory study, it only shows what it asks.)
    space_file = tmp_path / "probe.py"
    space_file.write_text(textwrap.dedent(f'''
        import os

        import optuna


        def probe(trial):
            searching = not isinstance(trial.study._storage, optuna.storages.InMemoryStorage)
            if searching and os.path.exists({str(weights)!r}):
                os.remove({str(weights)!r})
            trial.suggest_categorical("arch", ["resnet18"])
            trial.suggest_categorical("frozen_stages", [4])
            trial.suggest_float("lr", 0.01, 0.1, log=True)
            trial.suggest_categorical("batch_size", [100])


        probe.pretrained = True
    '''))
    out = tmp_path / "ft"
    proc = run_search("--space", f"{space_file}:probe", "--weights", str(weights), "--data", str(image_folder),
                      "--out", str(out), "--val-size", "200", "--cpus-per-trial", "1", "--num-samples", "1",
                      "--max-epochs", "1", "--grace-period", "1", "--max-failures", "0", "--no-report")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not weights.exists()
    table = pd.read_csv(out / "trials.csv")
    assert list(table["state"]) == ["COMPLETE"]
    best = json.loads((out / "best" / "config.json").read_text())
    assert best["config"]["weights"] == str(weights)  # the config still says where the weights came from
    assert json.loads((out / "best" / "metrics.json").read_text())["epochs"] == 1


def test_help_leads_with_what_a_first_search_needs():
    import dataclasses

    from search.cli import GROUPS
    from search.config import SearchConfig

    parser = get_args_parser()
    groups = [(g.title, [a.dest for a in g._group_actions]) for g in parser._action_groups if g._group_actions]
    assert [title for title, _ in groups] == ["options", "the search", "resources", "the algorithm",
                                              "after the search", "advanced"]
    assert groups[1][1] == ["space", "data", "time_budget", "num_samples", "max_epochs", "out", "resume"]
    # Every field is a flag once, in one group, and the help says each default once.
    dests = [d for _, names in groups[1:] for d in names if d != "resume"]
    assert sorted(dests) == sorted(f.name for f in dataclasses.fields(SearchConfig)) and len(set(dests)) == len(dests)
    assert set(GROUPS["the search"]) <= set(dests)
    text = parser.format_help()
    assert text.index("the search:") < text.index("resources:") < text.index("advanced:")
    assert text.count("(default: 32)") == 1
