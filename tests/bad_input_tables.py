"""The tests a bad-input table gets: rows ``(name, call, exception, phrase)``, where ``call()``
must raise ``exception`` with ``phrase`` (matched literally) in its message."""
import re

import pytest


def raises_test(table):
    """A test, parametrized over the rows (ids: their names), that each call raises as its row says."""
    @pytest.mark.parametrize("call, exc, phrase", [b[1:] for b in table], ids=[b[0] for b in table])
    def test(call, exc, phrase):
        with pytest.raises(exc, match=re.escape(phrase)):
            call()
    return test


def names_once_test(table, at_least=0):
    """A test that no two rows share a name and that the table has at least `at_least` rows."""
    def test():
        assert len({b[0] for b in table}) == len(table) >= at_least
    return test
