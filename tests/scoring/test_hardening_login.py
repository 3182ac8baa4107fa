"""The login throttle (scoring/backends.py): counted in the database before the
password is checked, so concurrent attempts cannot slip past the limit, and the
right password is refused while the name is locked. Admin and portal logins go
through it."""

import threading
from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connections
from django.test import Client, RequestFactory
from django.utils import timezone

from scoring.backends import LoginLocked
from scoring.models import LoginThrottle
from tests.factories import UserFactory

PASSWORD = "a-long-test-password"
LIMIT = 3


@pytest.fixture
def limits(settings):
    settings.LOGIN_FAILURE_LIMIT = LIMIT
    settings.LOGIN_IP_FAILURE_LIMIT = 50
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 900
    settings.LOGIN_LOCKOUT_SECONDS = 900
    return settings


@pytest.fixture
def password_checks(monkeypatch):
    """Counts real password checks (the hasher still runs)."""
    calls = []
    lock = threading.Lock()
    original = AbstractBaseUser.check_password

    def counting(self, raw_password):
        with lock:
            calls.append(self.get_username())
        return original(self, raw_password)

    monkeypatch.setattr(AbstractBaseUser, "check_password", counting)
    return calls


def attempt(username: str, password: str, address: str = "192.0.2.10"):
    request = RequestFactory().post("/login/", REMOTE_ADDR=address)
    return authenticate(request, username=username, password=password)


@pytest.mark.django_db
def test_the_limit_locks_the_name_and_the_right_password_is_refused_until_the_lock_ends(limits, password_checks):
    user = UserFactory(username="alice")
    for _ in range(LIMIT):
        assert attempt("alice", "wrong") is None
    assert attempt("alice", PASSWORD) is None  # locked: refused without checking the password
    assert len(password_checks) == LIMIT
    row = LoginThrottle.objects.get(key="user:alice")
    assert row.failures == LIMIT and row.locked_until > timezone.now()

    LoginThrottle.objects.filter(key="user:alice").update(locked_until=timezone.now() - timedelta(seconds=1))
    assert attempt("alice", PASSWORD) == user
    assert LoginThrottle.objects.get(key="user:alice").failures == 0


@pytest.mark.django_db
def test_a_successful_login_clears_the_count_and_failures_outside_the_window_are_forgotten(limits):
    user = UserFactory(username="bob")
    for _ in range(LIMIT - 1):
        attempt("bob", "wrong")
    assert attempt("bob", PASSWORD) == user
    for _ in range(LIMIT - 1):
        attempt("bob", "wrong")
    LoginThrottle.objects.filter(key="user:bob").update(first_failure_at=timezone.now() - timedelta(hours=1))
    attempt("bob", "wrong")
    assert LoginThrottle.objects.get(key="user:bob").failures == 1
    assert attempt("bob", PASSWORD) == user


@pytest.mark.django_db
def test_usernames_are_counted_case_insensitively_and_one_address_is_limited_too(limits):
    UserFactory(username="carol")
    for _ in range(LIMIT):
        attempt("CAROL", "wrong")
    assert attempt("carol", PASSWORD) is None
    limits.LOGIN_IP_FAILURE_LIMIT = 4
    UserFactory(username="dave")
    for name in ("x1", "x2", "x3", "x4"):  # a different name each time: only the address counts up
        attempt(name, "wrong", address="198.51.100.7")
    assert attempt("dave", PASSWORD, address="198.51.100.7") is None
    assert attempt("dave", PASSWORD, address="198.51.100.8") is not None


@pytest.mark.django_db
def test_the_lock_is_the_same_for_the_admin_and_the_portal_login(limits):
    UserFactory(username="erin", is_staff=True)
    client = Client()
    for _ in range(LIMIT):
        response = client.post("/admin/login/", {"username": "erin", "password": "wrong"})
        assert response.status_code == 200  # the form again, with its error
    locked = client.post("/admin/login/", {"username": "erin", "password": PASSWORD})
    assert locked.status_code == 200 and "_auth_user_id" not in client.session
    portal = client.post("/login/", {"username": "erin", "password": PASSWORD})
    assert portal.status_code == 200 and "_auth_user_id" not in client.session
    LoginThrottle.objects.filter(key="user:erin").update(locked_until=timezone.now() - timedelta(seconds=1))
    assert client.post("/login/", {"username": "erin", "password": PASSWORD}).status_code == 302


@pytest.mark.django_db
def test_a_locked_login_raises_permission_denied_so_no_other_backend_is_asked(limits):
    from scoring.backends import ThrottledModelBackend

    UserFactory(username="frank")
    for _ in range(LIMIT):
        attempt("frank", "wrong")
    request = RequestFactory().post("/login/", REMOTE_ADDR="192.0.2.10")
    with pytest.raises(LoginLocked):
        ThrottledModelBackend().authenticate(request, username="frank", password=PASSWORD)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_wrong_passwords_check_exactly_the_limit_then_lock(limits, password_checks):
    """N threads, each with its own database connection, try wrong passwords at the
    same moment: exactly LIMIT passwords are checked, the rest are refused unchecked,
    and the right password is refused afterwards."""
    UserFactory(username="grace")
    threads_count = 10
    barrier = threading.Barrier(threads_count)
    results, errors = [], []

    def run():
        try:
            barrier.wait(timeout=30)
            results.append(attempt("grace", "wrong"))
        except Exception as exc:  # reported below; a thread must not die silently
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert results == [None] * threads_count
    assert len(password_checks) == LIMIT
    row = LoginThrottle.objects.get(key="user:grace")
    assert row.failures == LIMIT and row.locked_until > timezone.now()
    assert attempt("grace", PASSWORD) is None
    assert len(password_checks) == LIMIT
