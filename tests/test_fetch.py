"""The fetch command's download, checksum verification and offline message, without network:
a file:// address stands in for the real one, and a closed local port for no network."""

import hashlib

import pytest

from plp_bench.data import fetch as fetch_module
from plp_bench.data.files import CATALOG, DataError, DatasetFiles, RemoteFile


@pytest.fixture
def fake_banknote(tmp_path, monkeypatch):
    source = tmp_path / "source.txt"
    source.write_bytes(b"1,2,3,4,0\r\n")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()

    def install(url, checksum=digest):
        remote = RemoteFile("data_banknote_authentication.txt", url, "sha256", checksum)
        monkeypatch.setitem(CATALOG, "banknote", DatasetFiles("banknote", "uci", (remote,)))

    return source, install


def test_fetch_downloads_and_verifies(tmp_path, fake_banknote):
    source, install = fake_banknote
    install(source.as_uri())
    root = tmp_path / "root"
    lines = fetch_module.fetch("banknote", root)
    target = root / "uci" / "data_banknote_authentication.txt"
    assert target.read_bytes() == source.read_bytes()
    assert "downloaded, sha256 verified" in lines[0]
    assert "present, sha256 verified" in fetch_module.fetch("banknote", root)[0]


def test_fetch_rejects_bad_checksum(tmp_path, fake_banknote):
    source, install = fake_banknote
    install(source.as_uri(), checksum="0" * 64)
    with pytest.raises(DataError, match="fails its sha256 check"):
        fetch_module.fetch("banknote", tmp_path / "root")
    assert not list((tmp_path / "root").rglob("*banknote*"))  # nothing half-written left


def test_fetch_offline_is_a_clear_message(tmp_path, fake_banknote):
    _, install = fake_banknote
    install("http://127.0.0.1:9/data_banknote_authentication.txt")
    with pytest.raises(fetch_module.OfflineError, match="may be offline"):
        fetch_module.fetch("banknote", tmp_path / "root")


def test_real_files_match_published_checksums(shared_data):
    for name in ("banknote", "magic", "mnist"):
        spec = CATALOG[name]
        for remote in spec.files:
            assert fetch_module.verify(shared_data / spec.subdir / remote.filename, remote)
