"""Every error a user can cause: its family, its exit code, its builtin base and its one line."""

from __future__ import annotations

import errno
import signal

import pytest

from mnist_ignite import errors
from mnist_ignite.errors import (
    ForcedStop,
    Interrupted,
    MnistIgniteError,
    OutputWriteError,
    PluginError,
    RunFailed,
    StopTraining,
    UsageError,
    did_you_mean,
)

USAGE = ["ConfigError", "SpecError", "UntrustedSpecError", "PluginLoadError", "ModelError", "RunDirError"]
USAGE += ["MissingExtraError", "DigitImageError", "BlankDigitError", "ImageTooLargeError", "BatchTooLargeError"]
FAILED = ["DataError", "CheckpointLoadError", "LRFindError", "ExportError", "StorageError", "AssetsError"]
FAILED += ["OutOfMemoryError"]
BUILTIN = {"MissingExtraError": ImportError, "OutputWriteError": OSError}


FAMILIES = [(n, UsageError, 2) for n in USAGE] + [(n, RunFailed, 1) for n in FAILED]


@pytest.mark.parametrize(("name", "family", "code"), FAMILIES)
def test_each_error_is_in_its_family_with_its_exit_code(name: str, family: type, code: int) -> None:
    cls = getattr(errors, name)
    error = cls("what went wrong")
    assert isinstance(error, family) and isinstance(error, MnistIgniteError)
    assert error.exit_code == code and error.label == "error" and str(error) == "what went wrong"
    if family is UsageError:  # callers that catch the builtin keep working
        assert isinstance(error, BUILTIN.get(name, ValueError))


def test_every_exported_error_is_one_the_command_line_can_report() -> None:
    names = [n for n in errors.__all__ if n != "did_you_mean"]
    others = ["ForcedStop", "Interrupted", "MnistIgniteError", "OutputWriteError", "PluginError", "RankFailed"]
    assert sorted(USAGE + FAILED + others + ["RunFailed", "StopTraining", "UsageError"]) == sorted(names)
    assert all(issubclass(getattr(errors, n), (MnistIgniteError, KeyboardInterrupt)) for n in names)


@pytest.mark.parametrize(
    ("word", "choices", "expected"),
    [("sed", ["seed", "tiny"], " (did you mean seed?)"), ("plot", ["plots", "progress"], " (did you mean plots?)"),
     ("xyz", ["seed", "tiny"], ""), ("seed", [], "")],
)  # fmt: skip
def test_did_you_mean_names_the_closest_choice_or_nothing(word: str, choices: list[str], expected: str) -> None:
    assert did_you_mean(word, choices) == expected


def test_an_output_write_error_is_an_oserror_worded_as_its_message() -> None:
    full = OutputWriteError(errno.ENOSPC, "cannot write metrics.json: no space left on the device")
    assert isinstance(full, OSError) and full.errno == errno.ENOSPC and full.exit_code == 1
    assert str(full) == "cannot write metrics.json: no space left on the device"  # no "[Errno 28]" prefix
    assert OutputWriteError(None, "lost").errno == errno.EIO


def test_a_plugin_error_names_the_plugin_the_event_and_its_line() -> None:
    cause = ValueError("kaboom")
    error = PluginError("exploding", "trainer EPOCH_COMPLETED(once=2)", cause, "boom.py:12 in boom")
    where = "trainer EPOCH_COMPLETED(once=2) at boom.py:12 in boom"
    assert str(error) == f"handler 'exploding' failed in {where}: ValueError: kaboom"
    assert (error.plugin, error.error, error.exit_code) == ("exploding", cause, 1)
    assert str(PluginError("p", "attach", cause)) == "handler 'p' failed in attach: ValueError: kaboom"


def test_a_stop_carries_its_own_exit_code_and_label() -> None:
    stop = StopTraining("the loss is NaN at iteration 12")
    assert (stop.exit_code, stop.label, isinstance(stop, RunFailed)) == (1, "stopped", True)
    assert StopTraining("time is up", exit_code=3).exit_code == 3


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_an_interrupt_exits_128_plus_the_signal_and_says_where_it_saved(signum: int, code: int) -> None:
    stopped = Interrupted(signum, "runs/a")
    assert stopped.exit_code == code and stopped.signum == signum and stopped.output_dir == "runs/a"
    name = signal.Signals(signum).name
    assert str(stopped) == f"{name} received: stopped after the current iteration; state saved in runs/a"
    forced = ForcedStop(signum)
    assert isinstance(forced, KeyboardInterrupt) and forced.signum == signum
    assert str(forced) == name


def test_a_failed_rank_says_whether_it_can_resume() -> None:
    saved = errors.RankFailed("rank 1 died (SIGKILL)", "runs/a", resumable=True)
    lost = errors.RankFailed("rank 1 died (SIGKILL)", "runs/a", resumable=False)
    assert isinstance(saved, RunFailed) and saved.exit_code == 1 and saved.output_dir == "runs/a"
    assert str(saved) == "rank 1 died (SIGKILL)" and str(lost) == "rank 1 died (SIGKILL); no checkpoint was saved yet"
