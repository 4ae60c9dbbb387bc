"""Every word the artist's (issue 24): the lexicon trie, its bundle section, the constrained
decoder, word lists, phrases that finish, the tasting panel, and the banks' note."""
import hashlib
import json

import numpy as np
import pytest
from voice_helpers import HARD, SOFT, small_voice, two_source_corpus

from lanthorn.cli import main
from lanthorn.device.engine.bundle import BundleError, read_bundle, write_bundle
from lanthorn.device.engine.lexicon import LexiconError, Trie, WordState, decode, encode, words_of
from lanthorn.device.piece.behaviour import PhraseBank
from lanthorn.device.piece.params import ParamStore
from lanthorn.device.piece.voice import Speaker, VoiceSpec, VoiceWorker, load_voice, word_window
from lanthorn.quantize.voice_corpus import load_corpus
from lanthorn.quantize.voice_taste import CorpusFacts, naive_bayes_accuracy, panel

P = ParamStore().snapshot()


@pytest.fixture(scope="module")
def voice_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lexvoice")
    corpus = two_source_corpus(tmp / "corpus", hard_weight=0.5, moods=True)
    _, bundle, report = small_voice(corpus, tmp / "out")
    return corpus, bundle, report


# ----------------------------------------------------------------------------- the trie

def test_trie_encode_decode_round_trip_and_refuses_malformed_bytes():
    words = ["the", "then", "there", "a", "moth", "moths", "don't", "x9"]
    t = Trie(words)
    data = encode(t)
    back = decode(data)
    assert back.words() == sorted(words) and len(back) == len(words)
    assert "then" in back and "th" not in back and "mot" not in back
    assert encode(back) == data                                   # deterministic
    assert len(data) <= 2 * sum(map(len, words)) + 2
    for bad in (data[:-1], data + b"\0", b"\x01\x00\x00", bytes([ord("a"), 0, 0])):
        with pytest.raises(LexiconError):
            decode(bad)                       # cut short, run on, control byte, a leaf ending no word
    with pytest.raises(LexiconError, match="not a word"):
        Trie(["two words"])


def test_word_state_only_continues_or_ends_corpus_words():
    vocab = "\n ,?abehnt"
    ws = WordState(Trie(["the", "then", "a", "bat"]), vocab)
    ix = {c: i for i, c in enumerate(vocab)}
    allowed = lambda: {vocab[i] for i in ws.allowed}              # noqa: E731
    assert allowed() == {"t", "a", "b"}                           # a phrase begins with a word
    for c in "th":
        ws.push(ix[c])
    assert allowed() == {"e"}                                     # "th" is no word: go on
    ws.push(ix["e"])
    assert allowed() == {"n", "\n", " ", ",", "?"}                # "the" ends a word
    ws.push(ix[","])
    assert allowed() == {" ", "\n"}                               # after punctuation
    ws.push(ix[" "])
    assert allowed() == {"t", "a", "b"}                           # after a space: a word


def test_word_window_keeps_the_current_word_and_the_ones_before():
    spec = VoiceSpec("\n abcdehlmorstw", ("calm",), 12, 1)
    sep = spec.separators()
    enc = lambda s: np.array([spec.vocab.index(c) for c in s])    # noqa: E731
    dec = lambda a: "".join(spec.vocab[i] for i in a)             # noqa: E731
    assert dec(word_window(enc("the warm lam"), sep, 1)) == "\n\n\n\nwarm lam"
    assert dec(word_window(enc("the warm lam"), sep, 2)) == "the warm lam"
    assert dec(word_window(enc("he warm "), sep, 1)) == "\n\n\nwarm "


# ----------------------------------------------------------------------------- the bundle

def _header(path) -> dict:
    raw = path.read_bytes()
    return json.loads(raw[64:64 + int.from_bytes(raw[16:24], "little")])


def test_a_voice_bundle_carries_its_lexicon_and_an_old_one_without_still_loads(tmp_path,
                                                                             voice_files):
    corpus, bundle_path, _ = voice_files
    b = read_bundle(bundle_path)
    assert b.lexicon and decode(b.lexicon).words() == load_corpus(corpus).words()
    meta = _header(bundle_path)["lexicon"]
    assert meta["format"] == "lanthorn-trie" and meta["version"] == 1
    assert meta["sha256"] == hashlib.sha256(b.lexicon).hexdigest()
    assert len(b.lexicon) < 4096                                  # a few KB at most
    # an old bundle: the same voice written without the section loads, unconstrained
    b.lexicon = None
    write_bundle(b, tmp_path / "old.lanthorn")
    assert "lexicon" not in _header(tmp_path / "old.lanthorn")
    old = load_voice(tmp_path / "old.lanthorn")
    assert old.lexicon is None and old.words is None
    assert isinstance(old.speak("calm", 0, P).text, str)
    # a lexicon section whose bytes were changed (checksum recomputed) is refused by its own hash
    raw = bytearray(bundle_path.read_bytes())
    hlen = int.from_bytes(raw[16:24], "little")
    raw[64 + hlen + meta["offset"] + 1] ^= 0x01                   # one byte of the trie
    end = 64 + hlen + int.from_bytes(raw[24:32], "little")
    raw[32:64] = hashlib.sha256(bytes(raw[:32]) + bytes(raw[64:end])).digest()
    (tmp_path / "bad.lanthorn").write_bytes(bytes(raw[:end]))
    with pytest.raises(BundleError, match="lexicon"):
        read_bundle(tmp_path / "bad.lanthorn")


# ----------------------------------------------------------------------------- decoding

def _vocab_words(lines):
    return {w for t in lines for w in words_of(t)}


def test_every_word_belongs_and_more_weight_moves_the_samples(tmp_path):
    """Issue 24's must-show: two sources with disjoint vocabularies; every generated word is
    one of the corpus's, and raising one source's weight moves the samples towards it."""
    soft, hard = _vocab_words(SOFT), _vocab_words(HARD)
    assert not soft & hard
    share = {}
    for w in (0.05, 1.5):
        c = two_source_corpus(tmp_path / f"c{w}", hard_weight=w)
        _, bundle, _ = small_voice(c, tmp_path / f"v{w}")
        voice = load_voice(bundle)
        words = [x for s in range(80) for x in words_of(voice.speak("calm", s, P).text)]
        assert words and set(words) <= soft | hard, set(words) - soft - hard
        share[w] = sum(x in hard for x in words) / len(words)
    print("share of generated words from the hard source:", share)
    assert share[1.5] >= share[0.05] + 0.15


def test_a_word_list_adds_words_without_lines(tmp_path, capsys):
    c = two_source_corpus(tmp_path / "c", hard_weight=0.5)
    assert main(["voice", "add-source", str(c), "extra", "--kind", "words", "--licence",
                 "CC0-1.0", "--consent", "mine"]) == 0
    assert "word list 'extra'" in capsys.readouterr().out
    (c / "sources" / "extra.txt").write_text("# allowed words\nlantern, moth\nglimmer\n")
    corpus = load_corpus(c)
    assert corpus.word_lists == {"extra": ["lantern", "moth", "glimmer"]}
    assert {"lantern", "glimmer"} <= set(corpus.words())
    assert not any(ln.source == "extra" for ln in corpus.lines)   # no training lines
    _, bundle, _ = small_voice(c, tmp_path / "v")
    assert {"lantern", "moth", "glimmer"} <= set(decode(read_bundle(bundle).lexicon).words())
    (c / "sources" / "extra.txt").write_text("two, good\nnot-a-word\n")
    with pytest.raises(Exception, match="'not-a-word' is not a word"):
        load_corpus(c)


def test_a_cut_phrase_is_retried_then_the_bank_speaks(voice_files):
    voice = load_voice(voice_files[1])
    tries = [voice.speak(m, s, dict(P, voice_max_len=14, voice_min_len=0))
             for m in voice.spec.moods for s in range(20)]
    retried = [ph for ph in tries if ph.tries > 1]
    assert retried and all(ph.complete or ph.tries == 4 for ph in tries)
    assert any(ph.complete for ph in retried)                     # a retry that finished
    # a retry draws with its own seed sequence: phrase n's retry is not phrase n+1's phrase
    same = sum(voice._attempt("calm", n, 0.7, 6, 40, None, 0, 0, 1)[0]
               == voice._attempt("calm", n + 1, 0.7, 6, 40, None, 0, 0, 0)[0] for n in range(12))
    assert same <= 2, same
    # a phrase that never finishes: the bank speaks instead
    said = []
    sp = Speaker(PhraseBank(), VoiceWorker(voice, threaded=False),
                 on_phrase=lambda ph, by: said.append(by))
    text = sp.update("calm", 0.0, dict(P, voice_max_len=4, voice_min_len=4))
    assert said == ["bank"] and text in P["phrases_calm"] and sp.failures == 1


def test_min_len_holds_the_end_back(voice_files):
    voice = load_voice(voice_files[1])
    for s in range(30):
        ph = voice.speak("calm", s, dict(P, voice_min_len=14))
        if ph.complete:
            assert ph.chars >= 14


# ----------------------------------------------------------------------------- the panel

def test_the_panel_measures_what_it_says(voice_files, capsys):
    corpus_dir, bundle, report = voice_files
    corpus = load_corpus(corpus_dir)
    facts = CorpusFacts(corpus)
    assert not facts.is_new("la lune alla") and facts.is_new("la lune zig")
    assert ("la", "lune") in facts.pairs and ("lune", "zig") not in facts.pairs
    # naive Bayes: words that separate two classes are learnt, shuffled labels are not
    texts = ["red apple"] * 20 + ["blue sea"] * 20
    assert naive_bayes_accuracy(texts, ["a"] * 20 + ["b"] * 20) == 1.0
    assert naive_bayes_accuracy(["same words"] * 40, ["a", "b"] * 20) <= 0.5
    p = panel(load_voice(bundle), corpus, P, seeds=10)
    assert p["phrases"] == 10 * len(p["per_mood"]) and p["constrained"]
    assert p["corpus_words"] == 1.0                               # the lexicon at work
    for k in ("new", "pairs", "complete", "mood"):
        assert 0.0 <= p[k] <= 1.0
    assert p["perplexity"]["all"] > 1 and set(p["perplexity"]) >= {"soft", "hard"}
    print("phrase time on this machine (ms):", p["phrase_ms"])   # measured, not asserted
    card = read_bundle(bundle).card
    assert card["tasting_panel"]["corpus_words"] == 1.0 and "every word" in card["limitations"]
    assert main(["voice", "taste", str(bundle), "--corpus", str(corpus_dir), "-n", "5"]) == 0
    out = capsys.readouterr().out
    for needle in ("every word is the artist's", "phrases made only of corpus words",
                   "new (not a substring", "word pairs found in the corpus", "mood legible",
                   "Held-out perplexity"):
        assert needle in out


def test_setting_a_bank_while_the_voice_speaks_says_so(tmp_path, voice_files):
    """`set phrases_delighted ...` over a real serial console while the voice speaks: OK,
    with a word on who speaks; the piece's own note, said by the console server."""
    from console_fakes import FakeApp
    from pty_link import PtyLink
    from test_console import Terminal

    from lanthorn.device.console.server import ConsoleServer
    from lanthorn.device.piece.piece import Piece
    from lanthorn.hardware.profile import load_profile
    from lanthorn.hardware.sim import open_sim_body
    body = open_sim_body(load_profile("sim"), realtime=False)
    link = PtyLink()
    server = None
    try:
        piece = Piece(body, model=None, clock=body.clock, oled_thread=False,
                      voice=load_voice(voice_files[1]), voice_thread=False)
        app = FakeApp(tmp_path / "data")
        app.params = piece.params
        app.param_note = piece.param_note
        term = Terminal(link.host)
        server = ConsoleServer(link.device, app).start()
        term.line()
        note = "(the voice is speaking; the bank speaks when voice_enabled is off or a phrase fails)"
        answer = term.answer("set phrases_delighted hello friend | so warm")
        assert len(answer) == 1 and answer[0].startswith("OK phrases_delighted = ") \
            and answer[0].endswith(note), answer
        assert piece.params.get("phrases_delighted") == ["hello friend", "so warm"]
        assert term.answer("set voice_enabled off")[0].startswith("OK")
        assert not term.answer("set phrases_delighted hello")[0].endswith(note)
        assert "phrase_by" in piece.status()
        term.ser.close()
    finally:
        if server is not None:
            server.stop()
        link.close()
        body.close()
