"""The path expansion the scope rollups file each case's figures through (app/supervision/rollups.py)."""
from app.supervision.rollups import path_scopes


def test_a_grid_path_is_filed_under_each_unit_above_it_with_the_child_it_lies_under():
    assert path_scopes("/1/4/9/23/") == [("/1/", "/1/4/"), ("/1/4/", "/1/4/9/"), ("/1/4/9/", "/1/4/9/23/"),
                                          ("/1/4/9/23/", "/1/4/9/23/")]


def test_a_case_at_the_root_is_its_own_child_and_no_path_has_no_scope():
    assert path_scopes("/1/") == [("/1/", "/1/")]
    assert path_scopes("") == []


def test_unit_ids_are_matched_whole_not_as_string_prefixes():
    # "/1/4/" must never look like it lies under "/1/40/": scopes are built from whole segments
    assert [scope for scope, _ in path_scopes("/1/40/7/")] == ["/1/", "/1/40/", "/1/40/7/"]
