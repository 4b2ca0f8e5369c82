"""Write pyhf's validation models as the JSON workspaces in this folder (see README.md).

Usage::

    python tests/data/pyhf/convert.py PYHF

where ``PYHF`` is a checkout of https://github.com/scikit-hep/pyhf or a bare
clone of it; from a bare clone the files of commit ``b3dc4bb2`` are used. It
needs pyhf with its XML extra (``pyhf.readxml``, which reads ROOT files with
uproot). Nothing here is run by pytest: the work is under ``__main__``.

The models of pyhf's ``tests/test_validation.py`` are written there as Python
specs built from the small JSON files of ``validation/data``; they are copied
here (``VALIDATION_SPECS``) and stored as workspaces with the source's observed
counts, one measurement ``meas`` and the POI ``mu``. The HistFactory XML models
of ``validation/`` are converted with ``pyhf.readxml.parse``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

COMMIT = "b3dc4bb2"
HERE = Path(__file__).resolve().parent


def _sample(name, data, modifiers):
    return {"name": name, "data": data, "modifiers": modifiers}


def _mu():
    return {"name": "mu", "type": "normfactor", "data": None}


def _shapesys(name, data):
    return {"name": name, "type": "shapesys", "data": data}


def _normsys(name, lo, hi):
    return {"name": name, "type": "normsys", "data": {"lo": lo, "hi": hi}}


def _histosys(name, lo, hi):
    return {"name": name, "type": "histosys", "data": {"lo_data": lo, "hi_data": hi}}


def _one_bin_shapesys(s):
    b = s["bindata"]
    return [
        {
            "name": "singlechannel",
            "samples": [
                _sample("signal", b["sig"], [_mu()]),
                _sample("background", b["bkg"], [_shapesys("uncorr_bkguncrt", b["bkgerr"])]),
            ],
        }
    ]


def _lumi(s):
    b = s["bindata"]
    lumi = {"data": None, "name": "lumi", "type": "lumi"}
    return [
        {
            "name": "channel1",
            "samples": [
                _sample("signal", b["sig"], [_mu()]),
                _sample("background1", b["bkg1"], [lumi]),
                _sample("background2", b["bkg2"], [dict(lumi)]),
            ],
        }
    ]


LUMI_PARAMETERS = [{"auxdata": [1.0], "bounds": [[0.0, 10.0]], "inits": [1.0], "name": "lumi", "sigmas": [0.1]}]


def _normsys_1bin(s):
    b = s["bindata"]
    return [
        {
            "name": "singlechannel",
            "samples": [
                _sample("signal", b["sig"], [_mu()]),
                _sample("background", b["bkg"], [_normsys("bkg_norm", 0.90, 1.10)]),
            ],
        }
    ]


def _histosys_1channel(s):
    b = s["bindata"]
    return [
        {
            "name": "singlechannel",
            "samples": [
                _sample("signal", b["sig"], [_mu()]),
                _sample("background", b["bkg"], [_histosys("bkg_norm", b["bkgsys_dn"], b["bkgsys_up"])]),
            ],
        }
    ]


def _two_channel(s):
    sig, ctl = s["channels"]["signal"]["bindata"], s["channels"]["control"]["bindata"]
    return [
        {
            "name": "signal",
            "samples": [
                _sample("signal", sig["sig"], [_mu()]),
                _sample("background", sig["bkg"], [_shapesys("uncorr_bkguncrt_signal", sig["bkgerr"])]),
            ],
        },
        {
            "name": "control",
            "samples": [_sample("background", ctl["bkg"], [_shapesys("uncorr_bkguncrt_control", ctl["bkgerr"])])],
        },
    ]


def _couplednorm(s):
    sig, ctl = s["channels"]["signal"]["bindata"], s["channels"]["control"]["bindata"]
    return [
        {
            "name": "signal",
            "samples": [
                _sample("signal", sig["sig"], [_mu()]),
                _sample("bkg1", sig["bkg1"], [_normsys("coupled_normsys", 0.9, 1.1)]),
                _sample("bkg2", sig["bkg2"], [_normsys("coupled_normsys", 0.5, 1.5)]),
            ],
        },
        {"name": "control", "samples": [_sample("background", ctl["bkg1"], [_normsys("coupled_normsys", 0.9, 1.1)])]},
    ]


def _coupledhistosys(s):
    sig, ctl = s["channels"]["signal"]["bindata"], s["channels"]["control"]["bindata"]
    return [
        {
            "name": "signal",
            "samples": [
                _sample("signal", sig["sig"], [_mu()]),
                _sample("bkg1", sig["bkg1"], [_histosys("coupled_histosys", sig["bkg1_dn"], sig["bkg1_up"])]),
                _sample("bkg2", sig["bkg2"], [_histosys("coupled_histosys", sig["bkg2_dn"], sig["bkg2_up"])]),
            ],
        },
        {
            "name": "control",
            "samples": [
                _sample("background", ctl["bkg1"], [_histosys("coupled_histosys", ctl["bkg1_dn"], ctl["bkg1_up"])])
            ],
        },
    ]


def _coupledshapefactor(s):
    sig, ctl = s["channels"]["signal"]["bindata"], s["channels"]["control"]["bindata"]
    factor = {"name": "coupled_shapefactor", "type": "shapefactor", "data": None}
    return [
        {
            "name": "signal",
            "samples": [_sample("signal", sig["sig"], [_mu()]), _sample("bkg1", sig["bkg1"], [dict(factor)])],
        },
        {"name": "control", "samples": [_sample("background", ctl["bkg1"], [dict(factor)])]},
    ]


def _statex(s):
    """2bin_statex.json has no spec in pyhf: two backgrounds with a shared staterror, a third without."""
    b = s["bindata"]
    stat = "staterror_singlechannel"
    return [
        {
            "name": "singlechannel",
            "samples": [
                _sample("signal", b["sig"], [_mu()]),
                _sample("bkg1", b["bkg1"], [{"name": stat, "type": "staterror", "data": b["bkg1err"]}]),
                _sample("bkg2", b["bkg2"], [{"name": stat, "type": "staterror", "data": b["bkg2err"]}]),
                _sample("bkg3", b["bkg3"], []),
            ],
        }
    ]


#: output name -> (validation/data file, channels builder, measurement parameters). The first
#: nine are the specs of pyhf's tests/test_validation.py (named after its test ids); the last
#: four use the remaining files of validation/data with the modifiers their keys name.
VALIDATION_SPECS = {
    "1bin_shapesys": ("1bin_example1.json", _one_bin_shapesys, []),
    "1bin_shapesys_q0": ("1bin_example1_q0.json", _one_bin_shapesys, []),
    "1bin_lumi": ("1bin_lumi.json", _lumi, LUMI_PARAMETERS),
    "1bin_normsys": ("1bin_normsys.json", _normsys_1bin, []),
    "2bin_histosys": ("2bin_histosys_example2.json", _histosys_1channel, []),
    "2bin_2channel": ("2bin_2channel_example1.json", _two_channel, []),
    "2bin_2channel_couplednorm": ("2bin_2channel_couplednorm.json", _couplednorm, []),
    "2bin_2channel_coupledhistosys": ("2bin_2channel_coupledhisto.json", _coupledhistosys, []),
    "2bin_2channel_coupledshapefactor": ("2bin_2channel_coupledshapefactor.json", _coupledshapefactor, []),
    "1bin_histosys": ("1bin_histosys.json", _histosys_1channel, []),
    "2bin_example1": ("2bin_example1.json", _one_bin_shapesys, []),
    "2bin_histosys_example1": ("2bin_histosys.json", _histosys_1channel, []),
    "2bin_statex": ("2bin_statex.json", _statex, []),
}

#: The workspace of test_shapesys_nuisparfilter_validation in pyhf's tests/test_validation.py.
SHAPESYS_NUISPARFILTER = {
    "channels": [
        {
            "name": "channel1",
            "samples": [
                {
                    "data": [20, 10],
                    "modifiers": [{"data": None, "name": "SigXsecOverSM", "type": "normfactor"}],
                    "name": "signal",
                },
                {
                    "data": [100, 10],
                    "modifiers": [{"data": [10, 0], "name": "syst", "type": "shapesys"}],
                    "name": "background1",
                },
            ],
        }
    ],
    "measurements": [
        {
            "config": {
                "parameters": [{"auxdata": [1], "bounds": [[0.5, 1.5]], "inits": [1], "name": "lumi", "sigmas": [0.1]}],
                "poi": "SigXsecOverSM",
            },
            "name": "GaussExample",
        }
    ],
    "observations": [{"data": [100, 10], "name": "channel1"}],
    "version": "1.0.0",
}

#: output name -> (folder under validation/, top-level XML relative to it). pyhf.readxml
#: cannot read xmlimport_input's example_Expression.xml and example_ShapeSys2D.xml;
#: xmlimport_input2 is the same model as multichan_coupledhistosys_histfactory.
XML_MODELS = {
    "multibin_histfactory": ("multibin_histfactory", "config/example.xml"),
    "multibin_histfactory_p0": ("multibin_histfactory_p0", "config/example.xml"),
    "multichan_coupledhistosys_histfactory": ("multichan_coupledhistosys_histfactory", "config/example.xml"),
    "multichan_coupledoverall_histfactory": ("multichan_coupledoverall_histfactory", "config/example.xml"),
    "multichannel_histfactory": ("multichannel_histfactory", "config/example.xml"),
    "overallsys_histfactory": ("overallsys_histfactory", "config/example.xml"),
    "shared_nuispar_across_types": ("shared_nuispar_across_types", "config/example.xml"),
    "shared_nuispar_across_types_notshared": ("shared_nuispar_across_types", "config/example_notshared.xml"),
    "xmlimport_input": ("xmlimport_input", "config/example.xml"),
    "xmlimport_input_datadriven": ("xmlimport_input", "config/examples/example_DataDriven.xml"),
    "xmlimport_input_shapesys": ("xmlimport_input", "config/examples/example_ShapeSys.xml"),
    "xmlimport_input3": ("xmlimport_input3", "config/examples/example_ShapeSys.xml"),
    "xmlimport_input4": ("xmlimport_input4", "config/example.xml"),
}

#: Workspaces stored as JSON in pyhf's validation/ folder, copied as they are.
JSON_WORKSPACES = {"xmlimport_input_bkg": "xmlimport_input_bkg.json"}


def _workspace(channels, source, parameters):
    if "channels" in source:
        observations = [{"name": c["name"], "data": source["channels"][c["name"]]["bindata"]["data"]} for c in channels]
    else:
        observations = [{"name": channels[0]["name"], "data": source["bindata"]["data"]}]
    return {
        "channels": channels,
        "observations": observations,
        "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": parameters}}],
        "version": "1.0.0",
    }


def _validation_folder(pyhf_repo: Path, scratch: Path) -> Path:
    """pyhf's validation/ folder: the checkout's, or commit COMMIT's from a bare clone."""
    if (pyhf_repo / "validation").is_dir():
        return pyhf_repo / "validation"
    archive = subprocess.run(
        ["git", "--git-dir", str(pyhf_repo), "archive", COMMIT, "validation"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "x", "-C", str(scratch)], input=archive, check=True)
    return scratch / "validation"


def _write(name: str, workspace: dict) -> None:
    import pyhf

    pyhf.Workspace(workspace)  # schema check
    text = json.dumps(workspace, indent=1, sort_keys=True) + "\n"
    (HERE / f"{name}.json").write_text(text, encoding="utf-8")
    print(f"{name}.json: {len(text)} bytes")


def main(pyhf_repo: Path) -> None:
    import pyhf.readxml

    with tempfile.TemporaryDirectory() as scratch:
        validation = _validation_folder(pyhf_repo, Path(scratch))
        for name, (source_file, channels, parameters) in VALIDATION_SPECS.items():
            source = json.loads((validation / "data" / source_file).read_text(encoding="utf-8"))
            _write(name, _workspace(channels(source), source, parameters))
        _write("shapesys_nuisparfilter", SHAPESYS_NUISPARFILTER)
        for name, (folder, top_level) in XML_MODELS.items():
            base = validation / folder
            _write(name, pyhf.readxml.parse(base / top_level, base, track_progress=False))
        for name, path in JSON_WORKSPACES.items():
            _write(name, json.loads((validation / path).read_text(encoding="utf-8")))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
