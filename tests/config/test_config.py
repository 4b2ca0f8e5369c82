"""Config loading: YAML with lines, the shipped schema, meaning checks, plugins.

Every error case edits ``tests/configs/full.yaml`` (which uses every key of
``configs/README.md``) and checks the one-line message: file, line, field path
and suggestion.
"""

from __future__ import annotations

import copy
import json
import shutil
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

import diffhep.config.load as load_module
from diffhep.config import (
    FUNCTIONS,
    SCHEMA,
    Config,
    Expr,
    load_config,
    load_config_dict,
    load_plugins,
    schema_path,
)
from diffhep.errors import ConfigError

HERE = Path(__file__).resolve().parents[1]  # tests/
FULL = HERE / "configs" / "full.yaml"
CORRECTIONS = HERE.parent / "analyses" / "ttbar" / "corrections.json"  # the AGC's correctionlib file
TEMPLATES = sorted(p for p in (HERE.parent / "configs").glob("*.yaml") if "samples:" in p.read_text())
PLUGIN = '''"""Test plugin."""
import diffhep.config


@diffhep.config.register("ht_ratio")
def ht_ratio(jets, met):
    return met / (1.0 + met)
'''
MINIMAL = {
    "name": "mini",
    "lumi_pb": 10.0,
    "samples": {"sig": {"role": "signal", "files": ["data/sig.root"], "xsec_pb": 1.0}},
    "regions": {"sr": {"observable": "MET_pt", "binning": {"bins": 2, "range": [0, 100]}, "bandwidth": 1.0}},
}


@pytest.fixture(autouse=True)
def clean_registry():
    """Leave the plugin registry and the imported-plugin cache as they were."""
    functions, plugins = dict(FUNCTIONS), dict(load_module._PLUGINS)
    yield
    FUNCTIONS.clear()
    FUNCTIONS.update(functions)
    load_module._PLUGINS.clear()
    load_module._PLUGINS.update(plugins)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding the plugin and the correction file of full.yaml; configs are written here."""
    (tmp_path / "plugin_ok.py").write_text(PLUGIN)
    shutil.copy(CORRECTIONS, tmp_path / "corrections.json")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def full_text() -> str:
    return FULL.read_text()


def line_of(text: str, marker: str) -> int:
    """First line containing ``marker`` (or equal to it, for ``"=text"``)."""
    lines = enumerate(text.splitlines(), 1)
    if marker.startswith("="):
        return next(i for i, line in lines if line == marker[1:])
    return next(i for i, line in lines if marker in line)


def failure(text: str, name: str = "analysis.yaml") -> str:
    Path(name).write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(name)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- valid configs


def test_a_plugin_outside_the_folder_needs_an_absolute_path(folder: Path, tmp_path_factory) -> None:
    """Issue 18, paths: ``../plugin.py`` is refused (see CASES); the same file by its absolute path loads."""
    outside = tmp_path_factory.mktemp("elsewhere") / "plugin_ok.py"
    outside.write_text(PLUGIN)
    analysis = folder / "analysis"
    analysis.mkdir()
    shutil.copy(CORRECTIONS, analysis / "corrections.json")
    text = full_text().replace("plugins: [plugin_ok.py]", f"plugins: [{outside}]")
    (analysis / "full.yaml").write_text(text)
    assert load_config(analysis / "full.yaml").resolved["plugins"] == [str(outside)]
    (analysis / "full.yaml").write_text(full_text().replace("plugins: [plugin_ok.py]", "plugins: [../plugin_ok.py]"))
    with pytest.raises(ConfigError, match=r"plugins\[0\]: plugin '\.\./plugin_ok\.py' leaves the config's folder"):
        load_config(analysis / "full.yaml")


def test_full_config(folder: Path) -> None:
    shutil.copy(FULL, folder / "full.yaml")
    config = load_config("full.yaml")
    assert isinstance(config, Config)
    assert config.path == folder / "full.yaml" and config.base_dir == folder and config.source == "full.yaml"
    assert config.data["samples"]["ttbar"]["files"] == ["data/ttbar.root", "data/ttbar_*.root"]
    assert config.resolved["samples"]["ttbar"]["files"] == [
        str(folder / "data/ttbar.root"),
        str(folder / "data/ttbar_*.root"),
    ]
    assert config.resolved["systematics"]["alt_ttbar"]["up"]["files"] == [str(folder / "data/ttbar_alt.root")]
    assert config.resolved["plugins"] == [str(folder / "plugin_ok.py")]
    assert config.resolved["corrections"]["agc"]["file"] == str(folder / "corrections.json")
    assert config.sections.corrections == {"agc": str(folder / "corrections.json")}
    assert [s.normalisation for s in config.sections.samples.values()] == ["weight", "events"]
    assert config.resolve("x.root") == folder / "x.root"
    assert "ht_ratio" in FUNCTIONS
    assert len(config.config_hash) == 64
    assert set(config.expressions) >= {
        "objects.jets.cuts",
        "objects.jets.require",
        "objects.jets.flags.btag",
        "regions.4j1b.select",
        "regions.4j2b.observable",
        "samples.ttbar.weight",
        "samples.wjets.weight",
        "systematics.btag_var.up.weight",
    }
    cuts = config.expressions["objects.jets.cuts"]
    assert isinstance(cuts, Expr) and cuts.text == "pt > jet_pt_min" and cuts.where == "objects.jets.cuts"
    text = FULL.read_text()
    assert config.line("objects.jets.flags.btag") == line_of(text, "btag: btagCSVV2")
    assert config.line(("samples", "ttbar", "files", 1)) == line_of(text, "data/ttbar_*.root")
    assert config.line("regions.4j2b.binning.edges[2]") == line_of(text, "edges: [110")
    error = config.error("objects.jets.cuts", "unknown branch 'Jet_ptt'")
    assert (
        str(error) == f"full.yaml:{line_of(text, 'cuts: pt > jet_pt_min')}: objects.jets.cuts: unknown branch 'Jet_ptt'"
    )
    again = load_config(folder / "full.yaml")  # the plugin is imported once
    assert again.config_hash == config.config_hash


def test_defaults_and_dict_loading(tmp_path: Path) -> None:
    config = load_config_dict(MINIMAL, base_dir=tmp_path)
    assert config.path is None and config.source == "<dict>"
    assert config.raw == MINIMAL and "tree" not in config.raw
    data = config.data
    assert data["tree"] == "Events" and data["plugins"] == [] and data["parameters"] == {}
    assert data["samples"]["sig"]["weight"] == 1
    assert data["measurement"] == {"poi": "mu", "fixed": [], "parameters": {}}
    assert data["objective"] == {"name": "discovery_significance", "mu": 1.0}
    assert "optimizer" not in data
    assert config.resolved["samples"]["sig"]["files"] == [str(tmp_path / "data/sig.root")]
    assert config.expressions["regions.sr.observable"].names() == ("MET_pt",)
    assert MINIMAL["samples"]["sig"].get("weight") is None  # the input is not modified
    assert repr(config).startswith("Config('<dict>', name='mini', config_hash=")
    assert (
        str(config.error("regions.sr.observable", "unknown branch")) == "<dict>: regions.sr.observable: unknown branch"
    )
    assert config.line("regions.sr") is None


def test_hash_is_canonical(folder: Path) -> None:
    Path("a.yaml").write_text("# comment\n" + json.dumps(MINIMAL))
    from_yaml = load_config("a.yaml")
    reordered = dict(reversed(list(copy.deepcopy(MINIMAL).items())))
    assert load_config_dict(reordered).config_hash == from_yaml.config_hash
    explicit = {**copy.deepcopy(MINIMAL), "tree": "Events"}  # a default written out
    assert load_config_dict(explicit).config_hash == from_yaml.config_hash
    changed = {**copy.deepcopy(MINIMAL), "lumi_pb": 11.0}
    assert load_config_dict(changed).config_hash != from_yaml.config_hash


def test_plugins_not_loaded(folder: Path) -> None:
    shutil.copy(FULL, folder / "full.yaml")
    config = load_config("full.yaml", plugins=False)
    assert "ht_ratio" not in FUNCTIONS and "regions.ll.observable" in config.expressions


def test_readme_example_validates(tmp_path: Path) -> None:
    """The annotated example of configs/README.md is a valid config (its plugin file aside)."""
    readme = HERE.parent / "configs" / "README.md"
    if not readme.is_file():
        pytest.skip("configs/README.md not found")
    block = readme.read_text().split("```yaml", 1)[1].split("```", 1)[0]
    data = yaml.safe_load(block)
    data.pop("plugins", None)
    config = load_config_dict(data, source="README.md", base_dir=tmp_path)
    assert {"regions.4j2b.observable", "objects.jets.flags.btag"} <= set(config.expressions)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_configs_validate(path: Path) -> None:
    load_config(path)


# ---------------------------------------------------------------- schema


def test_schema_shipped_and_valid() -> None:
    assert schema_path().is_file() and schema_path().name == "schema.json"
    shipped = resources.files("diffhep.config").joinpath("schema.json")
    assert json.loads(shipped.read_text()) == SCHEMA
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    defs = SCHEMA["$defs"]
    assert defs["sample"]["properties"]["role"]["enum"] == ["signal", "background", "data"]
    assert set(defs["systematic"]["properties"]["type"]["enum"]) == {
        "lumi",
        "normsys",
        "histosys",
        "staterror",
        "shapesys",
        "normfactor",
    }
    assert set(defs["objective"]["properties"]["name"]["enum"]) == {
        "discovery_significance",
        "cls",
        "poi_uncertainty",
        "asimov_significance",
    }
    assert set(defs["variation"]["properties"]) == {"scale", "branches", "weight", "files", "generate", "smear", "seed"}


def _walk(schema, where="#"):
    if isinstance(schema, dict):
        yield where, schema
        for key, value in schema.items():
            if isinstance(value, (dict, list)):
                yield from _walk(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from _walk(value, f"{where}/{i}")


def test_schema_describes_every_field() -> None:
    for where, node in _walk(SCHEMA):
        for key, sub in node.get("properties", {}).items() if isinstance(node.get("properties"), dict) else []:
            if "/if" in where:
                continue
            if "/then" in where or "/else" in where:
                assert sub is True, f"{where}/{key}"  # branches only list keys
            else:
                assert isinstance(sub, dict) and sub.get("description"), f"{where}/properties/{key} has no description"
        if node.get("type") == "object" and "properties" in node and "/then" not in where and "/else" not in where:
            open_ended = node.get("additionalProperties", True) is not False
            assert not open_ended or where.endswith(("schedule", "object", "systematic", "binning")), where


def test_full_fixture_uses_every_key() -> None:
    text = FULL.read_text()
    keys = {key for where, node in _walk(SCHEMA) if "/if" not in where for key in node.get("properties", {})}
    missing = sorted(key for key in keys if f"{key}:" not in text)
    assert not missing, f"tests/configs/full.yaml does not use {missing}"


# ---------------------------------------------------------------- errors

CASES = [
    # (replace, by, line marker, field path, message part)
    (
        "    cuts: pt > jet_pt_min\n    order",
        "    cust: pt > jet_pt_min\n    order",
        "cust:",
        "objects.jets.cust",
        "unknown key (did you mean 'cuts'?)",
    ),
    ("    weight: 1\n", "    weight: 1\n    wieght: 2\n", "wieght", "samples.wjets.wieght", "(did you mean 'weight'?)"),
    (
        "lumi_pb: 3378.0",
        "lumi_pb: 3378.0\nlumi_pbb: 3",
        "lumi_pbb",
        "lumi_pbb",
        "unknown key (did you mean 'lumi_pb'?)",
    ),
    ("lumi_pb: 3378.0", "lumi_pb: 3378.0\nzzz: 3", "zzz", "zzz", "unknown key; expected one of: name, lumi_pb, tree,"),
    ("xsec_pb: 729.84", "xsec_pb: abc", "abc", "samples.ttbar.xsec_pb", "got 'abc' (text); expected a number > 0"),
    ("    role: signal\n", "", "  ttbar:", "samples.ttbar", "missing required key 'role'"),
    (
        "role: signal",
        "role: signl",
        "signl",
        "samples.ttbar.role",
        "expected one of: signal, background, data (did you mean 'signal'?)",
    ),
    ("lumi_pb: 3378.0", "lumi_pb: 0", "lumi_pb", "lumi_pb", "0 is out of range; expected a number > 0"),
    ("  steps: 150", "  steps: 0", "  steps: 0", "optimizer.steps", "expected an integer >= 1"),
    ("  steps: 150", "  steps: 1.5", "  steps: 1.5", "optimizer.steps", "got 1.5; expected an integer >= 1"),
    ("slope: 20", "slope: -1", "slope: -1", "parameters.btag_min.slope", "expected a number > 0"),
    ("bounds: [10, 80]", "bounds: [80, 10]", "[80, 10]", "parameters.lepton_pt_min.bounds", "expected low < high"),
    (
        "init: 30, bounds: [10, 80]",
        "init: 5, bounds: [10, 80]",
        "init: 5",
        "parameters.lepton_pt_min.init",
        "5 is outside bounds [10, 80]; expected low < init < high",
    ),
    ("bounds: [10, 80]", "bounds: [10, 80, 90]", "90]", "parameters.lepton_pt_min.bounds", "expected [low, high]"),
    ("  jet_pt_min: ", "  jet-pt-min: ", "jet-pt-min", "parameters.jet-pt-min", "is not a valid name"),
    ("files: [data/wjets.root]", "files: []", "files: []", "samples.wjets.files", "got an empty list"),
    ("learning_rate: {name", "learning_rate: {nme", "nme", "optimizer.learning_rate", "expected learning rate (> 0)"),
    (
        "{type: lumi, sigma: 0.03}",
        "{type: lumi, sigma: 0.03, hi: 2}",
        "type: lumi",
        "systematics.lumi.hi",
        "unknown key for type 'lumi'",
    ),
    ("{type: lumi, sigma: 0.03}", "{type: lumi}", "type: lumi", "systematics.lumi", "missing required key 'sigma'"),
    (
        "{type: lumi, sigma: 0.03}",
        "{type: lumii, sigma: 0.03}",
        "lumii",
        "systematics.lumi.type",
        "(did you mean 'lumi'?)",
    ),
    (
        "    union: [muons, electrons]",
        "    union: [muons, electrons]\n    cuts: pt > 3",
        "cuts: pt > 3",
        "objects.leptons.cuts",
        "unknown key when 'union' is given",
    ),
    ("name: cls", "name: clss", "clss", "objective.name", "(did you mean 'cls'?)"),
    ("bandwidth: 0.1", "bandwidth: -0.1", "-0.1", "regions.ll.bandwidth", "expected a number >= 0"),
    ("bins: 4", "bins: 0", "bins: 0", "regions.ll.binning.bins", "expected an integer >= 1"),
    (
        "{bins: 4, range: [0, 1]}",
        "{range: [0, 1]}",
        "range: [0, 1]",
        "regions.ll.binning",
        "missing required key 'bins' (Number of equal-width bins); or give 'edges' instead",
    ),
    ("    collection: Jet\n", "", "=  jets:", "objects.jets", "missing required key 'collection' ("),
    # meaning checks
    ("role: signal", "role: background", "samples:", "samples", "no sample has role 'signal'"),
    (
        "samples: [wjets], hi",
        "samples: [wjet], hi",
        "wjet]",
        "systematics.wjets_norm.samples[0]",
        "unknown sample 'wjet' (did you mean 'wjets'?)",
    ),
    (
        "count(jets.btag) == 1",
        "count(jets.btg) == 1",
        "jets.btg",
        "regions.4j1b.select",
        "unknown flag jets.btg (did you mean 'btag'?)",
    ),
    (
        "select: count(leptons) == 1 and count(jets) >= 4 and count(jets.btag) == 1",
        "select: count(lepton) == 1",
        "count(lepton)",
        "regions.4j1b.select",
        "unknown object 'lepton' (did you mean 'leptons'?)",
    ),
    (
        "union: [muons, electrons]",
        "union: [muons, electron]",
        "electron]",
        "objects.leptons.union[1]",
        "unknown object 'electron' (did you mean 'electrons'?)",
    ),
    (
        "  jets:\n",
        "  all:\n    union: [leptons, muons]\n  jets:\n",
        "union: [leptons, muons]",
        "objects.all.union[0]",
        "'leptons' is itself a union",
    ),
    (
        "btagCSVV2 > btag_min",
        "btagCSVV2 > btag_mn",
        "btag_min:",
        "parameters.btag_min",
        "defined but not used by any expression (objects.jets.flags.btag names 'btag_mn': a typo?)",
    ),
    (
        "parameters:\n",
        "parameters:\n  spare: {init: 1, bounds: [0, 2], slope: 1}\n",
        "spare",
        "parameters.spare",
        "defined but not used by any expression; use it",
    ),
    ("poi: mu", "poi: lumi", "poi: lumi", "measurement.poi", "'lumi' is also a systematic (line "),
    (
        "fixed: [lumi]",
        "fixed: [lumii]",
        "lumii",
        "measurement.fixed[0]",
        "unknown parameter 'lumii' (did you mean 'lumi'?)",
    ),
    ("    mu: {bounds", "    muu: {bounds", "muu", "measurement.parameters.muu", "(did you mean 'mu'?)"),
    (
        "ttbar_norm: {bounds: [[0, 5]]",
        "ttbar_norm: {bounds: [[5, 0]]",
        "[[5, 0]]",
        "measurement.parameters.ttbar_norm.bounds",
        "expected low < high",
    ),
    (
        "{edges: [110, 150, 200",
        "{edges: [110, 150, 140",
        "edges",
        "regions.4j2b.binning.edges[2]",
        "140 follows 150; expected strictly increasing edges",
    ),
    (
        "range: [110, 550]}\n    bandwidth: 5\n  4j2b",
        "range: [550, 110]}\n    bandwidth: 5\n  4j2b",
        "[550, 110]",
        "regions.4j1b.binning.range",
        "[550, 110]: expected low < high",
    ),
    (
        "require: abs(eta) < 2.4",
        "require: abs(eta) < 2.4 and pt > jet_pt_min",
        "and pt > jet_pt_min",
        "objects.jets.require",
        "parameter 'jet_pt_min' is not allowed in require",
    ),
    (
        "cuts: pt > jet_pt_min",
        "cuts: pt > 3 and pt.__class__ > jet_pt_min",
        "__class__",
        "objects.jets.cuts",
        "'pt.__class__' is not allowed in an expression (column 12",
    ),
    (
        "cuts: pt > jet_pt_min",
        "cuts: pt > jet_pt_min and sqr(eta) < 3",
        "sqr(",
        "objects.jets.cuts",
        "unknown object-level function 'sqr' (did you mean 'sqrt'?)",
    ),
    (
        "cuts: pt > jet_pt_min",
        "cuts: pt > jet_pt_min and count(eta) < 3",
        "count(eta)",
        "objects.jets.cuts",
        "unknown object-level function 'count'; expected one of: abs",
    ),
    (
        "cuts: pt > jet_pt_min",
        "cuts: pt > jet_pt_min and muons.pt > 3",
        "muons.pt",
        "objects.jets.cuts",
        "'muons.pt': object-level expressions name fields of their own collection directly",
    ),
    (
        "cuts: pt > jet_pt_min",
        "cuts: pt > jet_pt_min >",
        "jet_pt_min >",
        "objects.jets.cuts",
        "invalid expression 'pt > jet_pt_min >': invalid syntax (at the end)",
    ),
    (
        "observable: sum(jets.pt)",
        "observable: jets.pt",
        "observable: jets.pt",
        "regions.4j1b.observable",
        "'jets.pt' is a value per object; reduce it",
    ),
    (
        "observable: sum(jets.pt)",
        "observable: sum(jets)",
        "sum(jets)",
        "regions.4j1b.observable",
        "sum() needs a field of 'jets', e.g. sum(jets.pt)",
    ),
    (
        "observable: sum(jets.pt)",
        "observable: jets * 2",
        "jets * 2",
        "regions.4j1b.observable",
        "object 'jets' used as a value",
    ),
    (
        "observable: sum(jets.pt)",
        "observable: count(jets, jets)",
        "count(jets, jets)",
        "regions.4j1b.observable",
        "count() takes 1 argument(s), got 2",
    ),
    (
        "trijet_mass(jets, jets.btag)",
        "trijet_mass(jets, jets)",
        "trijet_mass(jets, jets)",
        "regions.4j2b.observable",
        "trijet_mass() needs a flag second",
    ),
    (
        "ht_ratio(jets, MET_pt)",
        "ht_ratoi(jets, MET_pt)",
        "ht_ratoi",
        "regions.ll.observable",
        "unknown event-level function 'ht_ratoi' (did you mean 'ht_ratio'?)",
    ),
    (
        "weight: genWeight * 1.0",
        "weight: genWeight[0]",
        "genWeight[0]",
        "samples.ttbar.weight",
        "'genWeight[0]' is not allowed",
    ),
    (
        "up: {scale: {Jet_pt: 1.03}}",
        "up: {scale: {Jet_pt: 1.03}, smear: {Jet_pt: 0.1}}",
        "smear: {Jet_pt: 0.1}",
        "systematics.jes.up",
        "got scale, smear; expected exactly one of scale, branches, weight, files, smear",
    ),
    (
        "up: {scale: {Jet_pt: 1.03}}",
        "up: {scale: {Jet_pt: 1.03}, seed: 9}",
        "seed: 9",
        "systematics.jes.up.seed",
        "seed only applies to smear",
    ),
    ("up: {scale: {Jet_pt: 1.03}}", "up: {scale: {}}", "scale: {}", "systematics.jes.up.scale", "is empty"),
    (
        "up: {weight: btag_up_weight}",
        "up: {weight: 'btag_up_weight +'}",
        "btag_up_weight +",
        "systematics.btag_var.up.weight",
        "invalid expression",
    ),
    ("  jet_pt_min: ", "  jets: ", "=  jets:", "objects.jets", "'jets' is also a parameter (line "),
    ("  jet_pt_min: ", "  count: ", "count:   ", "parameters.count", "'count' is the name of a function"),
    ("  jet_pt_min: ", "  lambda: ", "lambda:   ", "parameters.lambda", "is a Python keyword"),
    ("lumi_pb: 3378.0", "lumi_pb: 3378.0\nlumi_pb: 3.0", "lumi_pb: 3.0", "lumi_pb", "duplicate key (first on line 3)"),
    ("  4j1b:", "  2016:", "2016:", "regions.2016", "a key must be text, got 2016; write it in quotes: '2016'"),
    ("name: ttbar_full", "name: 2024-01-01", "name:", "name", "write it in quotes to make it text"),
    ("lumi_pb: 3378.0", "lumi_pb: .inf", "lumi_pb", "lumi_pb", "expected a finite number"),
    ("plugins: [plugin_ok.py]", "plugins: [missing_plugin.py]", "plugins:", "plugins[0]", "plugin file not found: "),
    ("plugins: [plugin_ok.py]", "plugins: [../plugin_ok.py]", "plugins:", "plugins[0]", "leaves the config's folder"),
    ("plugins: [plugin_ok.py]", "plugins: [sub/../../x.py]", "plugins:", "plugins[0]", "written as an absolute path"),
]


@pytest.mark.parametrize(("old", "new", "marker", "field", "part"), CASES, ids=[c[3] + ":" + c[4][:24] for c in CASES])
def test_error_messages(folder: Path, old: str, new: str, marker: str, field: str, part: str) -> None:
    text = full_text()
    assert old in text, old
    text = text.replace(old, new, 1)
    message = failure(text)
    prefix = f"analysis.yaml:{line_of(text, marker)}: {field}: "
    assert message.startswith(prefix), f"{message!r} does not start with {prefix!r}"
    assert part in message, message


def test_list_items_on_their_own_lines(folder: Path) -> None:
    text = (
        "name: x\nlumi_pb: 1\nsamples:\n  s:\n    role: signal\n    files:\n      - a.root\n      - 3\n    xsec_pb: 1\n"
    )
    message = failure(text + "regions: {r: {observable: x, bandwidth: 1, binning: {bins: 1, range: [0, 1]}}}\n")
    assert message == "analysis.yaml:8: samples.s.files[1]: got 3; expected text"


def test_missing_top_level_key(folder: Path) -> None:
    message = failure("name: x\nlumi_pb: 1\nsamples: {}\n")
    assert message == "analysis.yaml:1: missing required key 'regions' (Region name -> region (a pyhf channel))"
    message = failure("name: x\nlumi_pb: 1\nsamples: {}\nregions: {}\n")
    assert message == "analysis.yaml:3: samples: is empty; expected at least one entry"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: [x\n", "analysis.yaml:2: invalid YAML: "),
        ("a: b: c\n", "analysis.yaml:1: invalid YAML: mapping values are not allowed here (column 5)"),
        ("", "analysis.yaml: expected a mapping of config keys at the top level, got an empty file"),
        ("- 1\n- 2\n", "analysis.yaml:1: expected a mapping of config keys at the top level, got list"),
        ("a: 1\n---\nb: 2\n", "analysis.yaml:2: invalid YAML: "),
        ("a: !!python/object:os.system x\n", "analysis.yaml:1: invalid YAML: "),
    ],
)
def test_unreadable_yaml(folder: Path, text: str, expected: str) -> None:
    assert failure(text).startswith(expected)


def test_missing_file(folder: Path) -> None:
    with pytest.raises(ConfigError, match=r"^nope\.yaml: config file not found$"):
        load_config("nope.yaml")


def test_dict_errors() -> None:
    bad = copy.deepcopy(MINIMAL)
    bad["samples"]["sig"]["xsec_pb"] = -1
    with pytest.raises(
        ConfigError, match=r"^<dict>: samples\.sig\.xsec_pb: -1 is out of range; expected a number > 0$"
    ):
        load_config_dict(bad)
    with pytest.raises(ConfigError, match=r"^spec: expected a mapping"):
        load_config_dict([], source="spec")  # type: ignore[arg-type]


# ---------------------------------------------------------------- plugins


def test_plugin_import_errors(folder: Path) -> None:
    Path("broken.py").write_text(
        "import diffhep.config\n@diffhep.config.register('half_done')\ndef f(x):\n    return x\n1 / 0\n"
    )
    Path("clash.py").write_text("import diffhep.config\n@diffhep.config.register('count')\ndef f(x):\n    return x\n")
    with pytest.raises(
        ConfigError, match=r"^cannot import plugin .*broken\.py:5: ZeroDivisionError: division by zero$"
    ):
        load_plugins(["broken.py"])
    assert "half_done" not in FUNCTIONS  # rolled back
    with pytest.raises(ConfigError, match=r"clash\.py:2: ConfigError: register: 'count' is a built-in function"):
        load_plugins([folder / "clash.py"])
    with pytest.raises(ConfigError, match=r"^plugin file not found: .*absent\.py$"):
        load_plugins(["absent.py"])
    text = full_text().replace("plugins: [plugin_ok.py]", "plugins: [plugin_ok.py, broken.py]")
    message = failure(text)
    assert message.startswith(f"analysis.yaml:{line_of(text, 'plugins:')}: plugins[1]: cannot import plugin ")


def test_plugin_errors_are_the_plugins_with_its_file_and_line(folder: Path, capsys) -> None:
    """sys.exit while imported, and an exception inside a registered function: one line naming the plugin's line."""
    from diffhep.cli import main
    from diffhep.errors import PluginError

    Path("exits.py").write_text("import sys\n\nsys.exit(0)\n")
    with pytest.raises(PluginError, match=r"^plugin called sys.exit\(0\) while imported, at .*exits\.py:3: SystemExit"):
        load_plugins(["exits.py"])  # was: the whole process ended with status 0
    text = full_text().replace("plugins: [plugin_ok.py]", "plugins: [plugin_ok.py, exits.py]")
    Path("analysis_exits.yaml").write_text(text)
    assert main(["validate", "analysis_exits.yaml", "--no-data"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "exits.py:3" in err, err
    Path("fails.py").write_text(
        "from diffhep.config import register\n\n@register('fails_inside')\ndef f(x):\n    return x / 0\n"
    )
    load_plugins(["fails.py"])
    try:
        with pytest.raises(PluginError) as info:
            FUNCTIONS["fails_inside"](1)
        assert (
            str(info.value)
            == f"plugin function 'fails_inside' failed at {Path('fails.py').resolve()}:5: ZeroDivisionError: division by zero"
        )
        assert (info.value.line, info.value.key) == (5, "fails_inside")
    finally:
        del FUNCTIONS["fails_inside"]


def test_load_plugins_once(folder: Path) -> None:
    first = load_plugins(["plugin_ok.py"])
    second = load_plugins([folder / "plugin_ok.py"])
    assert first[0] is second[0] and FUNCTIONS["ht_ratio"].__wrapped__ is first[0].ht_ratio


def test_an_edited_plugin_is_imported_again(folder: Path) -> None:
    """Editing a plugin and loading the config again (in a notebook) uses the new code, and drops old names."""
    path = folder / "plugin_edit.py"
    path.write_text("from diffhep.config import register\n\n@register('edited_a')\ndef f(x):\n    return x + 1\n")
    first = load_plugins([path])[0]
    assert FUNCTIONS["edited_a"](1) == 2
    assert load_plugins([path])[0] is first  # unchanged: not imported again
    path.write_text("from diffhep.config import register\n\n@register('edited_b')\ndef f(x):\n    return x + 2\n")
    second = load_plugins([path])[0]
    assert second is not first and FUNCTIONS["edited_b"](1) == 3 and "edited_a" not in FUNCTIONS
    del FUNCTIONS["edited_b"]
