"""One version rule for checkpoints and exported models (cxrseg.versions)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cxrseg.errors import InputError
from cxrseg.versions import check_made_by, version_tuple

HERE = Path("model.json")


def made_by(version: str, fmt: int = 1) -> dict[str, object]:
    return {"cxrseg_version": version, "format_version": fmt}


def test_version_tuple_keeps_major_and_minor() -> None:
    assert version_tuple("1.4.2rc1") == (1, 4)
    assert version_tuple("unknown") is None


@pytest.mark.parametrize("version", ["2.0.0", "2.3.1"])
def test_a_newer_major_version_is_refused_with_the_upgrade(version: str) -> None:
    with pytest.raises(InputError, match=f"cxrseg {version}.*this is cxrseg 1.2.0.*upgrade"):
        check_made_by(made_by(version), HERE, 1, current="1.2.0")


def test_a_newer_format_is_refused_even_from_the_same_version() -> None:
    with pytest.raises(InputError, match="format 2.*reads format 1"):
        check_made_by(made_by("1.2.0", fmt=2), HERE, 1, current="1.2.0")


@pytest.mark.parametrize("fmt", [None, "1", True])
def test_a_missing_or_non_integer_format_is_refused(fmt: object) -> None:
    with pytest.raises(InputError, match="format_version is missing or not an integer"):
        check_made_by({"cxrseg_version": "1.2.0", "format_version": fmt}, HERE, 1,
                      current="1.2.0")  # fmt: skip


def test_a_newer_minor_version_is_read_with_a_warning(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="cxrseg.versions"):
        check_made_by(made_by("1.3.0"), HERE, 1, current="1.2.5")
    assert "1.3.0" in caplog.text and "newer" in caplog.text


@pytest.mark.parametrize("version", ["1.2.9", "1.1.0", "0.9.0", "unknown"])
def test_the_same_or_older_versions_are_read_silently(version: str, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="cxrseg.versions"):
        check_made_by(made_by(version), HERE, 1, current="1.2.0")
    assert caplog.text == ""
