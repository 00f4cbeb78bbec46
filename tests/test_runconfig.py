"""``xdownscale run`` on wrong YAML and wrong files: a clear message, exit status 1, no
traceback; ``--check`` opens the files' metadata (issue "Reliability" 12, and the run items of
the newcomer's issue)."""

from __future__ import annotations

import pytest
import yaml
from test_job import run_dir  # noqa: F401  (the fixture: real-layout files and a valid YAML)

from xdownscale.app.cli import main
from xdownscale.app.runconfig import load_run_config
from xdownscale.errors import ConfigError


def _write(folder, change=None, extra=""):
    raw = yaml.safe_load((folder / "run.yaml").read_text())
    for key, value in (change or {}).items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    path = folder / "bad.yaml"
    path.write_text(yaml.safe_dump(raw) + extra)
    return path


def _fails(path, capsys, needle, *args):
    capsys.readouterr()
    assert main(["run", str(path), *args]) == 1
    err = capsys.readouterr().err
    assert "xdownscale: error:" in err and "Traceback" not in err
    assert needle in err, err
    return err


def test_12_yaml_types_are_checked(run_dir, capsys):  # noqa: F811
    # YAML 1.1 reads 1e-3 as a string; for a float field it is the number the user meant
    path = _write(run_dir, {"overrides": None}, extra="overrides:\n  lr: 1e-3\n  epochs: 1\n")
    assert load_run_config(path).config.lr == pytest.approx(1e-3)
    cases = [
        ({"predict": {"members": "2"}}, "members must be an integer"),
        ({"predict": {"members": 1.5}}, "members must be an integer"),
        ({"predict": {"seed": 2**40}}, "seed"),
        ({"predict": [1]}, "predict: expected a mapping"),
        ({"rollout": {"end": "notadate"}}, "rollout: end: expected a date"),
        ({"rollout": {"end": "2005-09-10", "start": "2005-09-20"}}, "after end"),
        ({"areas": 5}, "areas: expected a list of area names"),
        ({"areas": {"T": [20, 21]}}, "four numbers"),
        ({"models": "ddpm,unet"}, "models: unknown"),
        ({"seasons": [1]}, "seasons: expected a list"),
        ({"var": 3}, "var: expected a string"),
        ({"overrides": {"epochs": "3"}}, "epochs must be of type int"),
        ({"overrides": {"grad_clip": 0}}, "grad_clip must be > 0"),
        ({"config": {"lr": "fast"}}, "config: lr must be of type float"),
        ({"require_full_days": "no"}, "require_full_days"),
    ]
    for change, needle in cases:
        with pytest.raises(ConfigError, match=needle):
            load_run_config(_write(run_dir, change))
        _fails(run_dir / "bad.yaml", capsys, needle.split(":")[0], "--check")


def test_check_opens_the_files(run_dir, capsys):  # noqa: F811
    _fails(_write(run_dir, {"areas": {"T": [20.0, 25.0, 40.0, 41.45]}}), capsys,
           "partly outside", "--check")
    _fails(_write(run_dir, {"areas": {"T": [50.0, 51.0, 10.0, 11.0]}}), capsys,
           "no grid point", "--check")
    _fails(_write(run_dir, {"var": "DUEXTAUX"}), capsys, "'DUEXTAUX' not in", "--check")
    _fails(_write(run_dir, {"merra2": "merra2/*200504*.nc4"}), capsys, "do not cover", "--check")
    err = _fails(_write(run_dir, {"seasons": ["MAM"]}), capsys, "n_lags=40", "--check")
    assert "buffer_days=45" in err
    # the same checks run before a real run fits anything
    _fails(_write(run_dir, {"var": "DUEXTAUX"}), capsys, "DUEXTAUX")
    assert not (run_dir / "out").exists()
    (run_dir / "taken").write_text("a file where the output folder should go")
    _fails(_write(run_dir, {"output": "taken"}), capsys, "taken")
    capsys.readouterr()
    assert main(["run", str(run_dir / "run.yaml"), "--check"]) == 0
    assert "fine days" in capsys.readouterr().out


def test_run_help_lists_the_yaml_keys(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for key in ("output:", "areas:", "merra2:", "g5nr:", "overrides:", "predict:", "rollout:",
                "require_full_days:"):
        assert key in out
