import pytest

from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._pg import exact_table_pattern, pattern_to_regexes


@pytest.mark.parametrize("pattern, expected", [
    ("orders", (None, "^(orders)$")),
    ("Orders", (None, "^(orders)$")),
    ("public.orders", ("^(public)$", "^(orders)$")),
    ("public.ord*", ("^(public)$", "^(ord.*)$")),
    ("s?.t", ("^(s.)$", "^(t)$")),
    ('"Sales Data"."Quarterly ""Report"""', ("^(Sales Data)$", '^(Quarterly "Report")$')),
    ('"a.b*"', (None, "^(a\\.b\\*)$")),
    ("price$", (None, "^(price\\$)$")),
])
def test_pattern_to_regexes_follows_psql_rules(pattern, expected):
    assert pattern_to_regexes(pattern) == expected


@pytest.mark.parametrize("bad", ['"unterminated', "a.b.c", "a.", ".b"])
def test_bad_patterns(bad):
    with pytest.raises(InputError):
        pattern_to_regexes(bad)


def test_exact_pattern_is_literal():
    pattern = exact_table_pattern('Sales Data', 'Q "R".*')
    assert pattern == '"Sales Data"."Q ""R"".*"'
    assert pattern_to_regexes(pattern) == ("^(Sales Data)$", '^(Q "R"\\.\\*)$')
