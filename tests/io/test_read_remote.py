"""Inputs the way analysts have them: URLs over a local HTTP server, folders, and limits on files and events.

The server (``shared_data_server`` in tests/conftest.py, ``tests/http_server.py``) serves
``../shared/data`` on 127.0.0.1 with byte-range requests; the oracle is uproot reading
the same files from the local disk.
"""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from diffhep.errors import InputError
from diffhep.execute import ChunkCache, plan_chunks
from diffhep.io.read import (
    MissingFileError,
    NoFilesMatchedError,
    NotRootFileError,
    RemoteFileError,
    branch_names,
    expand_files,
    iterate_events,
    num_entries,
    read_events,
)

NANO = "nanoAOD_2015_CMS_Open_Data_ttbar.root"
RNTUPLE = "Run2012BC_DoubleMuParked_Muons_1000evts_rntuple_v1-0-0-0.root"
ZMUMU = "uproot-Zmumu.root"


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_url_reads_the_same_events_as_the_local_file(shared_data_server, data_file):
    local = data_file(NANO)
    branches = ["Jet_pt", "Jet_eta", "Muon_pt", "Electron_pt", "MET_pt", "genWeight"]
    before = len(shared_data_server.requests)
    remote = read_events(f"{shared_data_server.url}/{NANO}", branches=branches)
    expected = uproot.open(local)["Events"].arrays(branches, library="np")
    assert len(shared_data_server.requests) > before  # read over HTTP, not from the disk
    assert len(remote) == 200
    for branch in branches:
        prefix, _, field = branch.partition("_")
        got = remote[branch] if branch in remote.fields else remote[prefix][field]
        want = expected[branch]
        if want.dtype == object:  # jagged: one array per event
            assert ak.to_list(got) == [list(v) for v in want]
        else:
            np.testing.assert_array_equal(ak.to_numpy(got), want)


def test_an_rntuple_url_and_batches_over_http(shared_data_server, data_file):
    url = f"{shared_data_server.url}/{RNTUPLE}"
    assert num_entries(url) == uproot.open(data_file(RNTUPLE))["Events"].num_entries == 1000
    assert branch_names(url) == branch_names(data_file(RNTUPLE))
    remote = read_events(url, branches=["nMuon", "Muon_pt"], entry_start=100, entry_stop=300)
    local = read_events(data_file(RNTUPLE), branches=["nMuon", "Muon_pt"], entry_start=100, entry_stop=300)
    assert ak.to_list(remote) == ak.to_list(local)
    sizes = [len(b) for b in iterate_events([url, url], branches=["nMuon"], step_size=400)]
    assert sizes == [400, 400, 200, 400, 400, 200]


def test_the_server_answers_single_and_multipart_ranges(shared_data_server, data_file):
    data = data_file(ZMUMU).read_bytes()
    host, port = shared_data_server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", f"/{ZMUMU}", headers={"Range": "bytes=4-9"})
    single = conn.getresponse()
    assert (single.status, single.read()) == (206, data[4:10])
    conn.request("GET", f"/{ZMUMU}", headers={"Range": "bytes=0-3, 100-131"})
    multi = conn.getresponse()
    body = multi.read()
    assert multi.status == 206 and multi.getheader("Content-Type").startswith("multipart/byteranges")
    assert data[0:4] in body and data[100:132] in body and b"Content-Range: bytes 100-131/" in body
    conn.request("GET", f"/{ZMUMU}", headers={"Range": f"bytes={len(data)}-"})
    outside = conn.getresponse()
    outside.read()
    assert outside.status == 416
    conn.close()


def test_a_missing_url_and_a_refused_connection_are_one_line_errors(shared_data_server):
    missing = f"{shared_data_server.url}/no_such_file.root"
    with pytest.raises(RemoteFileError, match="HTTP 404") as err:
        read_events(missing)
    assert err.value.path == missing and missing in str(err.value) and "\n" not in str(err.value)
    refused = f"http://127.0.0.1:{_closed_port()}/{NANO}"
    with pytest.raises(RemoteFileError, match="connection refused") as err:
        num_entries(refused)
    assert err.value.path == refused and refused in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(NotRootFileError, match="not a ROOT file"):  # the README of the data folder
        read_events(f"{shared_data_server.url}/README.md")


def test_root_urls_need_fsspec_xrootd():
    pytest.importorskip("uproot")
    try:
        import fsspec_xrootd  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("fsspec-xrootd is installed: the message for its absence cannot be seen")
    with pytest.raises(RemoteFileError, match=r"fsspec-xrootd: pip install 'diffhep\[xrootd\]'"):
        read_events("root://127.0.0.1:1//store/x.root")


def test_folders_urls_and_a_limit_on_files(shared_data, tmp_path):
    roots = sorted(str(p) for p in Path(shared_data).glob("*.root"))
    assert expand_files(shared_data) == roots  # a folder: its ROOT files, sorted
    assert expand_files([shared_data, "https://host/x.root"], max_files=len(roots)) == roots
    assert expand_files(["https://host/b.root", "https://host/a.root"]) == [
        "https://host/b.root",
        "https://host/a.root",
    ]
    assert expand_files(shared_data, max_files=2) == roots[:2]
    (tmp_path / "notes.txt").write_text("no ROOT here")
    with pytest.raises(NoFilesMatchedError, match=r"no ROOT files \(\*\.root\) in the folder") as err:
        expand_files(tmp_path)
    assert err.value.path == str(tmp_path)
    with pytest.raises(MissingFileError):
        expand_files(tmp_path / "missing.root")


@pytest.mark.parametrize("bad", [0, -1, 2.5, "2", True])
def test_a_limit_that_is_not_a_positive_integer_is_refused(bad):
    with pytest.raises(InputError, match=f"max_files must be a positive whole number, got {bad!r}"):
        expand_files("https://host/x.root", max_files=bad)
    with pytest.raises(InputError, match=f"max_events must be a positive whole number, got {bad!r}"):
        plan_chunks("https://host/x.root", max_events=bad)


def test_plan_chunks_over_urls_stops_at_the_event_limit(shared_data_server):
    url = f"{shared_data_server.url}/{ZMUMU}"  # 2304 entries
    other = f"{shared_data_server.url}/never_opened.root"
    chunks = plan_chunks({"z": [url, url, other]}, chunk_size=1000, tree="events", max_events=3000)
    assert sum(c.n_events for c in chunks) == 3000
    assert [(c.start, c.stop) for c in chunks] == [(0, 768), (768, 1536), (1536, 2304), (0, 696)]
    assert all(c.n_events <= 1000 for c in chunks)
    assert "/never_opened.root" not in shared_data_server.requests  # files after the limit are not opened
    with pytest.raises(RemoteFileError):  # without the limit it is opened, and missing
        plan_chunks({"z": [url, other]}, chunk_size=1000, tree="events")


def test_the_chunk_cache_keys_a_url_without_stat(shared_data_server, tmp_path):
    url = f"{shared_data_server.url}/{ZMUMU}"
    (chunk,) = plan_chunks({"z": url}, chunk_size=10_000, tree="events")
    cache = ChunkCache(tmp_path, version="remote-1")
    first = cache.get(chunk, lambda c: {"n": np.arange(c.n_events)})
    again = cache.get(chunk, lambda c: 1 / 0)  # from disk: prepare is not called
    assert again["n"].tolist() == first["n"].tolist() and (cache.hits, cache.misses) == (1, 1)
    assert cache.key(chunk) != cache.key(chunk._replace(file=url + "?v=2"))
