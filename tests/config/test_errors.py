"""Errors as types: where a problem is (file, line, field or branch) is an attribute, not only text.

``ConfigError`` carries ``path``, ``line`` and ``key`` (the field path); ``InputError``
carries ``path`` and ``key`` (tree or branch). ``str(err)`` stays the one line the
command line prints, errors survive pickling (Dask ships them between processes),
and one helper, :func:`diffhep.errors.closest`, words every "did you mean".
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

import diffhep.config.schema as schema_module
from diffhep.config import load_config, load_config_dict, parse
from diffhep.errors import ConfigError, DiffhepError, InputError, closest
from diffhep.io import generate_sample
from diffhep.io.read import MissingBranchError, MissingFileError, MissingTreeError, read_events

CONFIG = """\
name: mini
lumi_pb: 10.0
samples:
  sig:
    role: signal
    files: [data/sig.root]
    xsec_pb: 1.0
regions:
  sr:
    observable: MET_pt
    select: MET_pt > 3
    binning: {bins: 2, range: [0, 100]}
    bandwidth: 1.0
"""
MINIMAL = {
    "name": "mini",
    "lumi_pb": 10.0,
    "samples": {"sig": {"role": "signal", "files": ["data/sig.root"], "xsec_pb": 1.0}},
    "regions": {"sr": {"observable": "MET_pt", "binning": {"bins": 2, "range": [0, 100]}, "bandwidth": 1.0}},
}


def config_error(tmp_path: Path, old: str, new: str) -> tuple[ConfigError, str]:
    """Load CONFIG with ``old`` replaced by ``new``; return the error and the file's path."""
    assert old in CONFIG
    path = tmp_path / "analysis.yaml"
    path.write_text(CONFIG.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value, str(path)


# ---------------------------------------------------------------- config errors


def test_schema_typo_sets_path_line_and_key(tmp_path: Path) -> None:
    err, path = config_error(tmp_path, "    select: MET_pt > 3", "    selec: MET_pt > 3")
    assert (err.path, err.line, err.key) == (path, 11, "regions.sr.selec")
    assert err.message == "unknown key (did you mean 'select'?)"
    assert str(err) == f"{path}:11: regions.sr.selec: unknown key (did you mean 'select'?)"


def test_meaning_check_sets_key_of_the_expression(tmp_path: Path) -> None:
    err, path = config_error(tmp_path, "select: MET_pt > 3", "select: sqr(MET_pt) > 3")
    assert (err.path, err.line, err.key) == (path, 11, "regions.sr.select")
    assert str(err) == f"{path}:11: regions.sr.select: unknown event-level function 'sqr' (did you mean 'sqrt'?)"


def test_duplicate_key_and_invalid_yaml_set_the_line(tmp_path: Path) -> None:
    err, path = config_error(tmp_path, "    bandwidth: 1.0\n", "    bandwidth: 1.0\n    bandwidth: 2.0\n")
    assert (err.path, err.line, err.key) == (path, 14, "regions.sr.bandwidth")
    assert str(err) == f"{path}:14: regions.sr.bandwidth: duplicate key (first on line 13)"
    err, path = config_error(tmp_path, "lumi_pb: 10.0", "lumi_pb: [10.0")
    assert err.path == path and err.line is not None and err.key is None
    assert str(err).startswith(f"{path}:{err.line}: invalid YAML: ")


def test_missing_config_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert (info.value.path, info.value.line, info.value.key) == (missing, None, None)
    assert str(info.value) == f"{missing}: config file not found"


def test_dict_config_names_its_source() -> None:
    bad = {**MINIMAL, "lumi_pb": -1}
    with pytest.raises(ConfigError) as info:
        load_config_dict(bad, source="spec")
    assert (info.value.path, info.value.line, info.value.key) == ("spec", None, "lumi_pb")
    assert str(info.value) == "spec: lumi_pb: -1 is out of range; expected a number > 0"


def test_config_error_for_later_stages(tmp_path: Path) -> None:
    path = tmp_path / "analysis.yaml"
    path.write_text(CONFIG)
    err = load_config(path).error("regions.sr.select", "unknown branch 'MET_ptt'")
    assert (err.path, err.line, err.key) == (str(path), 11, "regions.sr.select")
    assert str(err) == f"{path}:11: regions.sr.select: unknown branch 'MET_ptt'"


def test_expression_error_has_the_field_as_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse("pt.__class__", where="objects.jets.cuts")
    assert (info.value.path, info.value.line, info.value.key) == (None, None, "objects.jets.cuts")
    assert str(info.value).startswith("objects.jets.cuts: 'pt.__class__' is not allowed in an expression")


# ---------------------------------------------------------------- input errors


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(generate_sample(tmp_path_factory.mktemp("errors") / "dy.root", "dy", 50, seed=1))


def test_missing_branch_sets_path_and_key(sample: str) -> None:
    with pytest.raises(MissingBranchError) as info:
        read_events(sample, branches=["Muon_pt", "Muon_ptt"])
    err = info.value
    assert isinstance(err, InputError) and (err.path, err.key, err.line) == (sample, "Muon_ptt", None)
    assert str(err) == f"branch 'Muon_ptt' not found in {sample}:Events (did you mean 'Muon_pt'?)"


def test_missing_tree_and_file_set_path_and_key(sample: str, tmp_path: Path) -> None:
    with pytest.raises(MissingTreeError) as info:
        read_events(sample, tree="Event")
    assert (info.value.path, info.value.key) == (sample, "Event")
    assert str(info.value) == f"no tree or ntuple 'Event' in {sample}; available: Events (did you mean 'Events'?)"
    missing = str(tmp_path / "nope.root")
    with pytest.raises(MissingFileError) as info:
        read_events(missing)
    assert (info.value.path, info.value.key) == (missing, None)
    assert str(info.value) == f"file not found: {missing}"


# ---------------------------------------------------------------- the classes


def test_message_only_is_backward_compatible() -> None:
    for cls in (DiffhepError, InputError, ConfigError):
        err = cls("cfg.yaml:3: name: got 3; expected text")
        assert str(err) == "cfg.yaml:3: name: got 3; expected text" == err.message
        assert err.args == ("cfg.yaml:3: name: got 3; expected text",)
        assert (err.path, err.line, err.key) == (None, None, None)


def test_str_formats_what_the_message_does_not_name() -> None:
    assert str(ConfigError("bad", path="c.yaml", line=4, key="regions.sr")) == "c.yaml:4: regions.sr: bad"
    assert str(ConfigError("bad", path="c.yaml", key="regions.sr")) == "c.yaml: regions.sr: bad"
    assert str(ConfigError("bad", path="c.yaml", line=4)) == "c.yaml:4: bad"
    assert str(ConfigError("bad", key="regions.sr")) == "regions.sr: bad"
    # a message that already says where is not prefixed twice
    located = "c.yaml:4: regions.sr: bad"
    assert str(ConfigError(located, path="c.yaml", line=4, key="regions.sr")) == located
    # a key inside a longer name is not "already named"
    assert str(ConfigError("unknown key (did you mean 'tree'?)", path="c.yaml", line=2, key="tre")) == (
        "c.yaml:2: tre: unknown key (did you mean 'tree'?)"
    )
    assert str(InputError("file not found: a/b.root", path="a/b.root")) == "file not found: a/b.root"
    assert str(InputError("cannot read it", path="a/b.root", key="Events")) == "a/b.root: Events: cannot read it"


@pytest.mark.parametrize(
    "err",
    [
        ConfigError("unknown key", path="c.yaml", line=7, key="objects.jets.cut"),
        ConfigError("plain message"),
        InputError("branch 'x' not found in f.root:Events", path="f.root", key="x"),
        MissingBranchError("branch 'x' not found in f.root:Events", path="f.root", key="x"),
        DiffhepError("one line"),
    ],
)
def test_pickle_round_trip_keeps_type_attributes_and_message(err: DiffhepError) -> None:
    err.add_note("a note")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert (back.path, back.line, back.key, back.message) == (err.path, err.line, err.key, err.message)
    assert str(back) == str(err) and back.args == err.args and repr(back) == repr(err)
    assert back.__notes__ == ["a note"]


def test_repr_shows_the_attributes() -> None:
    err = ConfigError("bad", path="c.yaml", line=4, key="regions.sr")
    assert repr(err) == "ConfigError('bad', path='c.yaml', line=4, key='regions.sr')"
    assert repr(InputError("x")) == "InputError('x')"


# ---------------------------------------------------------------- closest


def test_closest_has_one_format() -> None:
    assert closest("cust", ["collection", "cuts", "flags"]) == " (did you mean 'cuts'?)"
    assert closest("Muon_ptt", ["Muon_pt", "Muon_eta", "Muon_pt"]) == " (did you mean 'Muon_pt'?)"
    assert closest("zzz", ["signal", "background", "signal"]) == "; expected one of: signal, background"
    many = [f"name{i:02d}" for i in range(15)]
    assert closest("zzz", many) == f"; expected one of: {', '.join(many[:10])} (and 5 more)"
    assert closest("zzz", []) == ""
    assert closest("adamm", ["adam", "adamw"], 1) == " (did you mean 'adam'?)"
    assert not hasattr(schema_module, "suggest")  # the config package uses closest too
