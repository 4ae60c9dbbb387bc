"""Signed bundles and the exhibition lock (device/engine/signing.py, device/SIGNING.md).

The must-show check runs the real piece (`lanthorn run --sim --serial`) on one end of a
pseudo-terminal and pushes with the real host client over pyserial on the other: a locked
object refuses an unsigned bundle, one signed by another key and one edited after signing
(checksum recomputed), each with a one-line reason, keeps running its model, and accepts
the bundle signed by the key provisioned with `lanthorn provision`.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lanthorn.device.engine import signing
from lanthorn.device.engine.bundle import PREFIX, read_bundle, write_bundle
from lanthorn.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "device" / "models" / "temperament.lanthorn"


def lanthorn(*args, env=None, check=True):
    p = subprocess.run([sys.executable, "-m", "lanthorn", *map(str, args)], capture_output=True,
                       text=True, timeout=120, cwd=ROOT, env=env)
    if check:
        assert p.returncode == 0, p.stderr
    return p


@pytest.fixture
def keys(tmp_path):
    """(trusted key, foreign key), made with `lanthorn key new` as an artist would."""
    out = []
    for name in ("artist", "stranger"):
        path = tmp_path / f"{name}.pem"
        lanthorn("key", "new", "--key", path)
        assert path.stat().st_mode & 0o777 == 0o600
        out.append(signing.load_key(path))
    return out


def named(tmp_path, name, key=None) -> Path:
    b = read_bundle(SHIPPED)
    b.card = dict(b.card, name=name)
    path = tmp_path / f"{name}.lanthorn"
    write_bundle(b, path, key)
    return path


def test_signature_roundtrip_and_what_breaks_it(tmp_path, keys):
    artist, stranger = keys
    pub = signing.public_of(artist)
    path = named(tmp_path, "signed", artist)
    b = read_bundle(path)
    assert b.signature[0] == pub and signing.check_trusted(b, [pub]) == pub
    twin = tmp_path / "unsigned-twin"
    twin.mkdir()
    same = named(twin, "signed")                  # the same bundle, unsigned: the trailer
    assert path.read_bytes()[:-signing.TRAILER.size] == same.read_bytes()   # is only added
    assert read_bundle(same).sha256 == b.sha256
    with pytest.raises(signing.SignatureError, match="does not trust"):
        signing.check_trusted(b, [signing.public_of(stranger)])
    with pytest.raises(signing.SignatureError, match="unsigned"):
        signing.check_trusted(read_bundle(named(tmp_path, "plain")), [pub])
    # edited after signing, checksum recomputed: the signature no longer matches
    data = bytearray(path.read_bytes())
    _, _, _, hlen, dlen, _ = PREFIX.unpack_from(data, 0)
    end = 64 + hlen + dlen
    header = bytes(data[64:64 + hlen]).replace(b'"name":"signed"', b'"name":"sigNed"')
    body = bytes(data[:32]) + header + bytes(data[64 + hlen:end])
    edited = bytes(data[:32]) + hashlib.sha256(body).digest() + header + bytes(data[64 + hlen:])
    (tmp_path / "edited.lanthorn").write_bytes(edited)
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.check_trusted(read_bundle(tmp_path / "edited.lanthorn"), [pub])
    # a damaged trailer is not a signature: the bytes after the bundle are refused
    bad = bytearray(path.read_bytes())
    bad[end] ^= 1
    (tmp_path / "bad.lanthorn").write_bytes(bytes(bad))
    with pytest.raises(UserError, match="unexpected bytes"):
        read_bundle(tmp_path / "bad.lanthorn")


def test_inspect_shows_the_signer(tmp_path, keys):
    path = named(tmp_path, "signed", keys[0])
    out = lanthorn("inspect", path).stdout
    assert f"signature {signing.key_text(signing.public_of(keys[0]))} (valid)" in out
    assert "signature none (unsigned)" in lanthorn("inspect", SHIPPED).stdout


def test_trust_store_is_fail_closed_and_provision_recovers(tmp_path, keys):
    data = tmp_path / "data"
    a, s = (signing.key_text(signing.public_of(k)) for k in keys)
    out = lanthorn("provision", "--data-dir", data, "--trust", a, "--name", "artist").stdout
    assert "1 trusted key" in out and signing.TrustStore(data).keys() == [signing.public_of(keys[0])]
    assert "already trusted" in lanthorn("provision", "--data-dir", data, "--trust", a).stdout
    (data / signing.TRUST_FILE).write_text("{not json")             # damaged: trusts nobody
    assert signing.TrustStore(data).keys() == []
    lanthorn("provision", "--data-dir", data, "--trust", s, "--replace")   # the way back
    assert signing.TrustStore(data).keys() == [signing.public_of(keys[1])]
    p = lanthorn("provision", "--data-dir", data, "--trust", "ed25519:1234", check=False)
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1
    assert "not a lanthorn public key" in p.stderr


def test_quantize_and_import_sign_with_the_default_key(tmp_path, keys, monkeypatch):
    """import signs with $LANTHORN_SIGNING_KEY's key by default, --no-sign opts out."""
    onnx = pytest.importorskip("onnx")
    del onnx
    key_path = tmp_path / "default.pem"
    lanthorn("key", "new", "--key", key_path)
    twin = tmp_path / "twin.onnx"
    twin.write_bytes(read_bundle(SHIPPED).twin)
    env = dict(__import__("os").environ, LANTHORN_SIGNING_KEY=str(key_path))
    out = lanthorn("import", twin, "--out", tmp_path / "a.lanthorn", env=env).stdout
    assert "signed by ed25519:" in out
    b = read_bundle(tmp_path / "a.lanthorn")
    assert b.signature[0] == signing.public_of(signing.load_key(key_path))
    out = lanthorn("import", twin, "--out", tmp_path / "b.lanthorn", "--no-sign", env=env).stdout
    assert "unsigned" in out and read_bundle(tmp_path / "b.lanthorn").signature is None


@pytest.mark.slow
def test_locked_object_installs_only_bundles_signed_by_a_trusted_key(tmp_path, keys):
    from pty_link import PtyLink
    from test_console_e2e import Device, ask, model_name, open_terminal

    from lanthorn.host.console_client import ConsoleClient, ConsoleError
    artist, stranger = keys
    data = tmp_path / "data"
    lanthorn("provision", "--data-dir", data, "--trust",
             signing.key_text(signing.public_of(artist)), "--name", "artist")
    unsigned = named(tmp_path, "unsigned")
    foreign = named(tmp_path, "foreign", stranger)
    trusted = named(tmp_path, "trusted", artist)
    raw = bytearray(named(tmp_path, "edited", artist).read_bytes())   # edited after signing
    _, _, _, hlen, _, _ = PREFIX.unpack_from(raw, 0)
    header = bytes(raw[64:64 + hlen]).replace(b'"name":"edited"', b'"name":"EDITED"')
    end = len(raw) - signing.TRAILER.size
    digest = hashlib.sha256(bytes(raw[:32]) + header + bytes(raw[64 + hlen:end])).digest()
    edited = bytes(raw[:32]) + digest + header + bytes(raw[64 + hlen:])
    with PtyLink() as link:
        device = Device(link.device, data, tmp_path / "device.log").start()
        try:
            ser = open_terminal(link.host, device)
            assert ask(ser, "lock 4711")[-1].startswith("OK locked")
            assert ask(ser, "trust add " + signing.key_text(signing.public_of(stranger)))[-1] \
                .startswith("ERR locked")
            ser.close()
            for data_bytes, why in ((unsigned.read_bytes(), "unsigned"),
                                    (foreign.read_bytes(), "does not trust"),
                                    (edited, "does not match")):
                with ConsoleClient(link.host) as client:
                    with pytest.raises(ConsoleError) as err:
                        client.push(data_bytes, 1024)
                    assert why in str(err.value) and "locked" in str(err.value)
                    assert "\n" not in str(err.value)
                    assert client.call("model info")["name"] == "temperament"   # still running
            with ConsoleClient(link.host) as client:
                result = client.push(trusted.read_bytes(), 1024)
                assert result["info"]["name"] == "trusted"
                assert client.call("status")["locked"] is True
            ser = open_terminal(link.host, device)
            assert model_name(ser) == "trusted"
            lines = ask(ser, "trust list")
            assert lines[-1] == "OK 1 trusted key(s)" and "artist" in lines[0]
            ser.close()
        finally:
            device.stop()
    assert json.loads((data / signing.TRUST_FILE).read_text())["keys"][0]["name"] == "artist"


def test_without_cryptography_a_locked_object_fails_closed(tmp_path, keys, monkeypatch):
    """A device installed without the package cannot check a signature: it refuses (and
    names the package), it never installs unchecked."""
    path = named(tmp_path, "signed", keys[0])
    bundle = read_bundle(path)                     # reading needs no cryptography

    def missing():
        raise UserError("checking or making signatures needs the Python package 'cryptography'")
    monkeypatch.setattr(signing, "_crypto", missing)
    with pytest.raises(UserError, match="cryptography"):
        signing.check_trusted(bundle, [bundle.signature[0]])
