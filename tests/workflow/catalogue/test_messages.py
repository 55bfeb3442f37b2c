"""pydantic's errors as the catalogue's messages (workflow/catalogue/messages.py): the key path as
the file writes it, the bad value shortened."""
from __future__ import annotations

import pytest

from workflow import catalogue as C

from .helpers import assert_mentions, base, error_of, setv, write

BAD_IDS = ["../x", "A B", "Upper", "a/b", "", "_x", "x" * 65]
ID_PLACES = {
    "paper": ("paper", "id"),
    "experiment": ("experiments", 0, "id"),
    "model": ("experiments", 0, "models", 0, "id"),
    "claim": ("claims", 0, "id"),
    "table": ("tables", 0, "id"),
}


@pytest.mark.parametrize("bad", BAD_IDS, ids=["dotdot-slash", "space", "upper", "slash", "empty", "underscore-first", "too-long"])
@pytest.mark.parametrize("place", ID_PLACES)
def test_id_not_path_safe(tmp_path, place, bad):
    keys = ID_PLACES[place]
    d = base()
    setv(*keys, bad)(d)
    path = write(tmp_path, d)
    msg = error_of(path)
    assert_mentions(msg, path, C.fmt_path(keys), repr(bad)[:40])


def test_long_bad_values_are_shortened_in_messages(tmp_path):
    d = base()
    d["paper"]["year"] = "x" * 10_000
    path = write(tmp_path, d)
    msg = error_of(path)
    assert_mentions(msg, path, "paper.year")
    assert len(msg) < 1000
