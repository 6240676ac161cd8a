"""User tables: headers with repeated names are refused before pandas renames them."""

import pytest

from glm_workflows.core.errors import InputError
from glm_workflows.core.group import read_participants
from glm_workflows.core.tables import check_unique_columns, header_columns, read_tsv


def test_header_columns_as_written(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("\ufeffa\tb\ta\r\n1\t2\t3\r\n")
    assert header_columns(path) == ["a", "b", "a"]
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    assert header_columns(empty) == []


def test_repeated_names_refused_naming_file_and_column(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("onset\tduration\tx\ty\tx\ty\n0\t1\t2\t3\t4\t5\n")
    with pytest.raises(InputError, match=r"t.tsv: column 'x' appears 2 times in the header "
                                         r"\(and 1 other repeated name\(s\)\)"):
        check_unique_columns(path)
    ok = tmp_path / "ok.tsv"
    ok.write_text("a\tb\n1\t2\n")
    assert list(read_tsv(ok).columns) == ["a", "b"]


def test_participants_with_a_repeated_column(tmp_path):
    path = tmp_path / "participants.tsv"
    path.write_text("participant_id\tage\tage\nsub-01\t20\t30\n")
    with pytest.raises(InputError, match="participants.tsv: column 'age' appears 2 times"):
        read_participants(path)


def test_unreadable_file(tmp_path):
    with pytest.raises(InputError, match="absent.tsv: cannot be read"):
        check_unique_columns(tmp_path / "absent.tsv")
