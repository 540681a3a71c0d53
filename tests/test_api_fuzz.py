"""Every route of the room, fuzzed from its own OpenAPI schema (Schemathesis): no input, however
malformed, gets a server error or an answer that breaks the schema, signed in or signed out.

The app is the real one (real account store, memory, avatar files in a temporary folder);
only the LLM is absent (no call can start, which is an answered 503, not a crash). Requests
carry the room's own Origin, as its pages do, so they reach the routes instead of stopping
at the cross-site guard (``tests/test_web_guards.py`` attacks that).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from testkit.net import LOCAL
from web.accounts import AccountStore, User
from web.app import create_app
from web.auth import COOKIE, RoomOptions

EXAMPLES = 40
"""Per route and sign-in state: 30 routes x 2 states x 40 cases, ~1 min on 2 cores."""


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, runtime):
    from bots.runtime import Runtime

    folder = tmp_path_factory.mktemp("fuzz")
    settings_ = runtime.settings.model_copy(
        update={
            "avatars_dir": folder / "avatars",
            "data_dir": folder / "data",
            "llm_port": 9,
            "llm_backend": "embedded",
        }
    )
    fuzz_runtime = Runtime(settings_, models=runtime.models, patches=runtime.patches)
    accounts = AccountStore(folder / "accounts.sqlite3")
    user = accounts.sign_up("fuzzer", "correct horse battery")
    # dev: the schema is served (only with --dev in the product).
    app = create_app(
        fuzz_runtime, ["lumina"], greet=False, accounts=accounts, room=RoomOptions(dev=True)
    )
    return app, accounts, user


@pytest.fixture(scope="module")
def api(fuzzed):
    app, _, _ = fuzzed
    # From the app itself: the schema route would be asked with a Host the room refuses.
    loaded = schemathesis.openapi.from_dict(app.openapi())
    loaded.app = app
    return loaded


def _cookie(accounts: AccountStore, user: User, signed_in: bool) -> dict[str, str]:
    # A fresh sign-in per case: a fuzzed logout or password change must not turn the rest
    # of the run into signed-out requests.
    return {COOKIE: accounts.sign_in(user)} if signed_in else {}


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same inputs every run: a failure reproduces
    database=None,
)


@pytest.mark.parametrize("signed_in", [True, False], ids=["signed-in", "signed-out"])
def test_no_input_breaks_a_route_or_its_schema(api, fuzzed, signed_in):
    _, accounts, user = fuzzed
    # Schemathesis' own pytest plugin does not load under pytest 9; its operations and
    # strategies are driven with Hypothesis directly instead.
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 25, [o.label for o in operations]
    broken: dict[str, str] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @FUZZ
        def fuzz(case) -> None:
            case.call_and_validate(
                base_url=LOCAL,
                headers={"Origin": LOCAL},
                cookies=_cookie(accounts, user, signed_in),
                # A schema-valid request may still be refused for what the schema cannot
                # say (a taken name, a voice not installed): that is an answer, not a bug.
                excluded_checks=[positive_data_acceptance],
            )

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as e:  # every route is tried and reported
            broken[operation.label] = str(e)[:600]
    assert not broken, "\n\n".join(f"{k}:\n{v}" for k, v in broken.items())
