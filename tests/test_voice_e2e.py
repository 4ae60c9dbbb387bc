"""The voice's must-show, end to end: train → quantize → push over a pty → the simulated
piece (`lanthorn run --sim --serial`, a real subprocess) speaks generated phrases that
change with its mood, and every phrase is the one onnxruntime on the bundle's QDQ twin
produces for the same mood and seed (so the int8 integers agreed at every character).
`model rollback voice` returns to the shipped voice; a damaged voice is refused."""
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pty_link import PtyLink
from test_console_e2e import Device, ask, open_terminal
from voice_helpers import small_voice, two_source_corpus

from lanthorn.device.engine.bundle import read_bundle
from lanthorn.device.engine.runtime import load
from lanthorn.device.piece.params import ParamStore
from lanthorn.device.piece.voice import Voice
from lanthorn.host.console_client import ConsoleClient
from lanthorn.quantize.voice_quantize import ort_voice_step

ROOT = Path(__file__).resolve().parents[1]


def test_train_quantize_push_and_the_piece_speaks_with_mood(tmp_path):
    corpus = two_source_corpus(tmp_path / "corpus", hard_weight=1.0, moods=True)
    _, bundle_path, report = small_voice(corpus, tmp_path / "voice")
    assert report["matches_onnxruntime"]["mismatches"] == 0
    bundle = read_bundle(bundle_path)
    # the oracle: the same sampler driven by onnxruntime's integers on the twin
    oracle = Voice(load(bundle), step=ort_voice_step(bundle))
    p = ParamStore().snapshot()

    link = PtyLink()
    device = Device(link.device, tmp_path / "data", tmp_path / "device.log").start()
    try:
        ser = open_terminal(link.host, device)
        ser.close()
        out = subprocess.run([sys.executable, "-m", "lanthorn", "push", str(bundle_path),
                              "--port", link.host, "--quiet"], capture_output=True, text=True,
                             timeout=120, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("installed voice test-voice"), out.stdout
        said = {}
        with ConsoleClient(link.host) as client:
            info = client.call("model info")
            assert info["voice"]["name"] == "test-voice"
            assert info["voice"]["sha256"] == bundle.sha256
            assert info["name"] == "temperament"          # the gesture model is untouched
            client.call("set voice_min_interval_s 0.5")
            client.call("set phrase_interval_s 1")
            end = time.monotonic() + 40
            while time.monotonic() < end and len({m for m, _ in said}) < 2:
                st = client.call("status")
                v = st.get("voice_said")
                if v and v["voice"] == "test-voice":   # not a phrase the shipped voice
                    said[(v["mood"], v["seed"])] = v["text"]   # finished after the push
                time.sleep(0.2)
            status = client.call("status")
        assert len({m for m, _ in said}) >= 2, f"the voice spoke in one mood only: {said}"
        assert status["phrase_ms_p99"] is not None
        for (mood, seed), text in said.items():
            theirs = oracle.speak(mood, seed, p)
            assert text == theirs.text, (mood, seed, text, theirs.text)
        assert len(set(said.values())) >= 2
        print(said)

        # a damaged voice whose transfer checks out is refused; the pushed one keeps speaking
        bad = bytearray(bundle_path.read_bytes())
        bad[len(bad) // 2] ^= 0xFF
        with ConsoleClient(link.host) as client:
            with pytest.raises(Exception, match="does not load, keeping the old one"):
                client.push(bytes(bad))
            assert client.call("model info")["voice"]["name"] == "test-voice"
        ser.open()
        answer = ask(ser, "model rollback voice")
        assert answer == ["OK rolled back to voice lantern-voice"], answer
        ser.close()
    finally:
        device.stop()
        link.close()


@pytest.mark.slow
def test_a_locked_object_installs_only_a_signed_voice(tmp_path):
    """The voice goes through the same trust checks as the gesture model: locked, the
    object refuses an unsigned voice with a one-line reason and installs a signed one."""
    from lanthorn.device.engine import signing
    from lanthorn.host.console_client import ConsoleError
    from lanthorn.quantize.voice_quantize import quantize_voice
    key_path = tmp_path / "artist.pem"
    r = subprocess.run([sys.executable, "-m", "lanthorn", "key", "new", "--key", str(key_path)],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    key = signing.load_key(key_path)
    corpus = two_source_corpus(tmp_path / "corpus", hard_weight=1.0, moods=True)
    onnx_path, unsigned, _ = small_voice(corpus, tmp_path / "voice", epochs=4)
    signed = tmp_path / "signed-voice.lanthorn"
    quantize_voice(onnx_path, corpus, signed, name="signed-voice", n_calib=64,
                   log=lambda *a: None, signing_key=key)
    assert read_bundle(signed).signature[0] == signing.public_of(key)
    data = tmp_path / "data"
    r = subprocess.run([sys.executable, "-m", "lanthorn", "provision", "--data-dir", str(data),
                        "--trust", signing.key_text(signing.public_of(key)), "--name", "artist"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    link = PtyLink()
    device = Device(link.device, data, tmp_path / "device.log").start()
    try:
        ser = open_terminal(link.host, device)
        assert ask(ser, "lock 4711")[-1].startswith("OK locked")
        ser.close()
        with ConsoleClient(link.host) as client:
            with pytest.raises(ConsoleError) as err:
                client.push(unsigned.read_bytes(), 1024)
            assert "unsigned" in str(err.value) and "\n" not in str(err.value)
            assert client.call("model info")["voice"]["name"] == "lantern-voice"
            result = client.push(signed.read_bytes(), 1024)
            assert result["info"]["voice"]["name"] == "signed-voice"
            assert client.call("model info")["voice"]["sha256"] == read_bundle(signed).sha256
    finally:
        device.stop()
        link.close()
