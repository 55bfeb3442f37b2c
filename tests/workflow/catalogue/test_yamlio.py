"""Safe YAML reading (workflow/catalogue/yamlio.py): size, alias and node caps, duplicate keys,
no tags, and libyaml's loader agreeing with the pure-Python one."""
from __future__ import annotations

import time

import pytest
import yaml

from workflow import catalogue as C
from workflow.catalogue import load_paper

from .helpers import (
    AXIS,
    EXP,
    PAPER,
    ROOT,
    assert_mentions,
    base,
    dump,
    error_of,
    write,
)

# ---- YAML-level problems: there is no key path yet, so the message gives the line instead

LATIN1 = "paper:\n  title: café\n".encode("latin-1")
RAW = [
    pytest.param("paper: [unclosed\nexperiments: {\n", ["invalid YAML", "line 2"], id="invalid-yaml"),
    pytest.param("paper:\n\tid: x\n", ["invalid YAML", "line 2"], id="tab-indent"),
    pytest.param("", ["empty"], id="empty-file"),
    pytest.param("# only a comment\n\n", ["empty"], id="only-comments"),
    pytest.param("---\n", ["empty"], id="only-document-marker"),
    pytest.param(LATIN1, ["UTF-8", f"byte {LATIN1.index(0xE9)}"], id="non-utf8-latin1"),
    pytest.param(b"\xff\xfe\x00p\x00a", ["UTF-8"], id="non-utf8-utf16-bom"),
    pytest.param("- paper\n- claims\n", ["mapping", "list"], id="top-level-list"),
    pytest.param("just a string\n", ["mapping", "str"], id="top-level-scalar"),
    pytest.param("a: 1\n---\nb: 2\n", ["line 2"], id="two-documents"),
]


@pytest.mark.parametrize("text, expect", RAW)
def test_bad_yaml(tmp_path, text, expect):
    path = write(tmp_path, text=text)
    assert_mentions(error_of(path), path, *expect)


def test_missing_file(tmp_path):
    path = tmp_path / "absent.yaml"
    assert_mentions(error_of(path), path, "no such file")


def test_file_too_large(tmp_path):
    path = write(tmp_path, text=dump(base()) + "#" * (C.MAX_FILE_BYTES + 1) + "\n")
    assert_mentions(error_of(path), path, str(C.MAX_FILE_BYTES))


def test_duplicate_top_level_key(tmp_path):
    text = dump(base()) + "paper: {id: again}\n"
    line = text.count("\n")
    path = write(tmp_path, text=text)
    assert_mentions(error_of(path), path, "duplicate key 'paper'", f"line {line}")


def test_duplicate_nested_key(tmp_path):
    text = dump(base())
    steps = f"    steps: {EXP['train']['steps']}\n"
    assert steps in text
    line = text[: text.index(steps)].count("\n") + 2
    path = write(tmp_path, text=text.replace(steps, steps + "    steps: 5\n", 1))
    # the message gives the key and its line, not the full key path experiments[0].train.steps
    assert_mentions(error_of(path), path, "duplicate key 'steps'", f"line {line}")


def test_duplicate_key_in_flow_mapping(tmp_path):
    d = base()
    d["experiments"][0]["models"][0] = "MODEL"
    text = dump(d).replace("MODEL", "{id: a, arch: toy_autoencoder, hidden: 5, hidden: 6}")
    path = write(tmp_path, text=text)
    assert_mentions(error_of(path), path, "duplicate key 'hidden'")


@pytest.mark.parametrize("tag", [
    '!!python/object/apply:os.system ["touch {marker}"]',
    '!!python/object/apply:subprocess.call [["touch", "{marker}"]]',
    '!!python/object/new:subprocess.Popen [["touch", "{marker}"]]',
    '!!python/name:os.system',
    '!!python/object/apply:os.system ["echo hi"]',
], ids=["os.system-touch", "subprocess.call", "Popen-new", "python-name", "os.system-echo"])
def test_python_tags_are_refused_and_not_executed(tmp_path, capfd, tag):
    marker = tmp_path / "executed"
    d = base()
    d["paper"]["title"] = "TITLE"
    text = dump(d).replace("TITLE", tag.format(marker=marker))
    path = write(tmp_path, text=text)
    msg = error_of(path)
    assert_mentions(msg, path, "python/", "tag", "line 3")
    assert not marker.exists(), "the YAML tag ran a command"
    out, _ = capfd.readouterr()
    assert "hi" not in out.split(), "the YAML tag ran `echo hi`"


def _laughs(levels: int, width: int, key: str = "x") -> list[str]:
    lines = [f"{key}0: &{key}0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"{key}{i}: &{key}{i} [" + ", ".join([f"*{key}{i - 1}"] * width) + "]")
    return lines


def test_alias_bomb_over_the_cap_is_refused_quickly(tmp_path):
    levels = C.MAX_ALIASES // 10 + 2                 # (levels - 1) * 10 aliases > MAX_ALIASES
    path = write(tmp_path, text="\n".join(_laughs(levels, 10)) + "\n")
    t = time.perf_counter()
    msg = error_of(path)
    assert time.perf_counter() - t < 2
    assert_mentions(msg, path, f"more than {C.MAX_ALIASES} YAML aliases", f"line {C.MAX_ALIASES // 10 + 2}")
    assert len(msg) < 1000


def test_billion_laughs_under_the_cap_is_refused_quickly(tmp_path):
    """The classic bomb: 9 levels of 10 (80 aliases, 10**9 strings if expanded), as unknown top-level keys."""
    path = write(tmp_path, text="\n".join(_laughs(9, 10)) + "\n")
    t = time.perf_counter()
    msg = error_of(path)
    assert time.perf_counter() - t < 2
    assert_mentions(msg, path, "alias")
    assert len(msg) < 5000


def test_aliases_below_the_cap_are_fine(tmp_path):
    d = base()
    d["claims"][0]["measure"]["at"] = "AT"
    text = dump(d).replace(f"{AXIS}:\n", f"{AXIS}: &values\n", 1).replace("AT", "{%s: 0.999}" % AXIS)
    assert "&values" in text
    lp = load_paper(write(tmp_path, text=text))
    assert lp.id == PAPER


def test_alias_bomb_below_the_cap_gives_a_short_message(tmp_path):
    d = base()
    d["paper"]["title"] = "TITLE"
    text = "\n".join(_laughs(6, 9)) + "\n" + dump(d).replace("TITLE", "*x5")
    path = write(tmp_path, text=text)
    msg = error_of(path)
    assert_mentions(msg, path, "alias")
    assert len(msg) < 20_000, f"the message is {len(msg)} characters long"


@pytest.mark.skipif(C._FastLoader is None, reason="PyYAML here is built without libyaml")
def test_the_libyaml_loader_gives_the_same_data_and_the_same_refusals():
    """Catalogues parse with libyaml; it must agree with the pure-Python loader on every shipped
    file, and itself refuse duplicate keys and one alias past the cap (the fallback then words it)."""
    for path in sorted((ROOT / "catalogue").glob("*.yaml")):
        text = path.read_text()
        assert yaml.load(text, Loader=C._FastLoader) == yaml.load(text, Loader=C._Loader), path
    def flat(n):  # one anchor, n aliases of it
        return "a: &a {k: [1, 2]}\nl: [" + ", ".join(["*a"] * n) + "]\n"
    assert yaml.load(flat(C.MAX_ALIASES), Loader=C._FastLoader) == yaml.load(flat(C.MAX_ALIASES), Loader=C._Loader)
    over = flat(C.MAX_ALIASES + 1)
    for bad in (over, "a: 1\nb: 2\na: 3\n"):
        with pytest.raises(yaml.YAMLError):
            yaml.load(bad, Loader=C._FastLoader)
        with pytest.raises(yaml.YAMLError):
            yaml.load(bad, Loader=C._Loader)
