"""Presenter rights at their edges: the wrong, expired and spent case of every right (app/serving/auth.py).

The mutation-testing selection for app/serving/auth.py (pyproject.toml [tool.panda.mutation]): each test
says what a room of viewers must not be able to do.
"""

from __future__ import annotations

import re
import time

import pytest

from app.serving.auth import (PRESENTER_COOKIE, PRESENTER_COOKIE_AGE, Access, OneTimeCode, PresenterKeys, is_local,
                      new_token, read_token_file, token_matches)


def test_new_tokens_are_url_safe_and_never_repeat():
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{16,}", t) for t in tokens)


def test_token_file_gives_its_first_line_stripped(tmp_path):
    path = tmp_path / "token"
    path.write_text("  s3cret \nsecond line\n", encoding="utf-8")
    assert read_token_file(path) == "s3cret"
    assert read_token_file(str(path)) == "s3cret"


def test_token_file_path_may_start_with_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "t").write_text("abc\n", encoding="utf-8")
    assert read_token_file("~/t") == "abc"


@pytest.mark.parametrize("text", ["", "\n", "   \nsecond\n", "\t"])
def test_token_file_without_a_token_is_refused(tmp_path, text):
    path = tmp_path / "token"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="no token"):
        read_token_file(path)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1", "127.0.0.2", "127.255.255.254"])
def test_loopback_hosts_are_local(host):
    assert is_local(host) is True


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "example.org", "my-laptop",
                                  "", "localhost.example.org", "128.0.0.1"])
def test_other_hosts_are_not_local(host):
    """A host name that is no IP address (``panda app --host NAME``) is served with a token."""
    assert is_local(host) is False


@pytest.mark.parametrize("expected, given, result", [
    ("s3cret", "s3cret", True),
    ("s3cret", "  s3cret\n", True),    # what a form field adds around a pasted token
    ("s3cret", "s3cre", False),
    ("s3cret", "s3cretX", False),
    ("s3cret", "S3CRET", False),
    ("s3cret", "", False),
    ("s3cret", None, False),
    (None, "s3cret", False),           # no token configured: nothing matches it
    ("", "", False),
    (None, None, False),
])
def test_token_matches_only_the_token(expected, given, result):
    assert token_matches(expected, given) is result


def test_without_a_token_everyone_may_steer():
    for token in (None, ""):
        access = Access(token)
        assert access.token is None and access.needs_token is False
        assert access.can_steer(None) is True and access.can_steer("anything") is True
    assert Access(None).present is False


def test_with_a_token_only_its_holder_may_steer():
    access = Access("s3cret", present=True)
    assert access.needs_token is True and access.present is True and access.token == "s3cret"
    assert access.can_steer("s3cret") is True
    assert access.can_steer("wrong") is False
    assert access.can_steer("") is False
    assert access.can_steer(None) is False


def test_a_code_is_worth_one_session():
    code = OneTimeCode("c0de", expires=1000.0)
    assert code.spent is False
    assert code.redeem("c0de", now=10.0) is True
    assert code.spent is True
    assert code.redeem("c0de", now=10.0) is False  # the Back button, or a second browser


def test_a_wrong_code_is_refused_and_leaves_the_right_one_valid():
    code = OneTimeCode("c0de", expires=1000.0)
    for wrong in ("c0dE", "c0d", "c0de0", "", None, "anything"):
        assert code.redeem(wrong, now=10.0) is False
        assert code.spent is False
    assert code.redeem(" c0de ", now=10.0) is True


def test_a_code_works_until_its_expiry_and_not_a_second_later():
    assert OneTimeCode("c0de", expires=1000.0).redeem("c0de", now=1000.0) is True
    late = OneTimeCode("c0de", expires=1000.0)
    assert late.redeem("c0de", now=1000.5) is False
    assert late.spent is False  # refused, not spent: no one got it


def test_a_code_is_checked_against_the_clock_when_no_time_is_given():
    import time
    assert OneTimeCode("c0de", expires=time.time() + 600).redeem("c0de") is True
    assert OneTimeCode("c0de", expires=time.time() - 1).redeem("c0de") is False
    # a given time wins over the clock: at t=999 a code expiring at 1000 is still good
    assert OneTimeCode("c0de", expires=1000.0).redeem("c0de", now=999.0) is True


@pytest.mark.parametrize("missing", [None, ""])
def test_no_code_means_nothing_to_redeem(missing):
    code = OneTimeCode(missing, expires=1e12)
    assert code.spent is True
    for given in ("", None, "None", "anything"):
        assert code.redeem(given, now=1.0) is False


def test_presenter_keys_are_valid_only_once_issued():
    keys = PresenterKeys()
    guess = "a" * 32
    assert keys.valid(guess) is False
    issued = [keys.issue() for _ in range(20)]
    assert len(set(issued)) == 20 and all(len(k) >= 32 for k in issued)
    assert all(keys.valid(k) is True for k in issued)
    for bad in (guess, issued[0][:-1], issued[0] + "x", "", None, 42, [issued[0]], b"x"):
        assert keys.valid(bad) is False
    assert PresenterKeys().valid(issued[0]) is False  # a restarted server forgets them


def test_the_cookie_script_stores_the_key_for_this_site_only():
    script = PresenterKeys.cookie_script("KEY123")
    cookie = re.fullmatch(r"<script>document.cookie = '([^']*)';</script>", script).group(1)
    parts = [p.strip() for p in cookie.split(";")]
    assert parts[0] == f"{PRESENTER_COOKIE}=KEY123"
    assert set(parts[1:]) == {"path=/", "SameSite=Strict", f"max-age={PRESENTER_COOKIE_AGE}"}


# --- the server's secrets: one pair per process, out of every client's reach -------------------

def test_presenter_secrets_are_one_pair_per_server_and_code_and_the_code_lives_its_ttl(tmp_path):
    from app.serving.auth import CODE_TTL, presenter_secrets

    before = time.time()
    code, keys = presenter_secrets(tmp_path, "abc")
    after = time.time()
    assert isinstance(code, OneTimeCode) and isinstance(keys, PresenterKeys)
    assert before + CODE_TTL <= code.expires <= after + CODE_TTL  # the window opens now, for CODE_TTL
    again = presenter_secrets(str(tmp_path), "abc")
    assert again[0] is code and again[1] is keys  # the same pair for the same server, however the path is given
    key = keys.issue()
    assert code.redeem("abc") is True
    code2, keys2 = presenter_secrets(tmp_path, "abc")
    assert code2.spent and code2.redeem("abc") is False  # spent stays spent on the next lookup
    assert keys2.valid(key)  # and a key stays valid
    other, other_keys = presenter_secrets(tmp_path / "other", "abc")
    assert other is not code and other_keys is not keys and other.redeem("abc") is True
    fresh, _ = presenter_secrets(tmp_path, "xyz")
    assert fresh is not code and fresh.redeem("abc") is False and fresh.redeem("xyz") is True
