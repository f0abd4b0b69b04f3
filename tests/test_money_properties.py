"""Property tests of the money functions: no negative charge, no overdraft, reserve + settle = the formula."""

import math
from decimal import Decimal
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from oneapi.extensions import db
from oneapi.models import QuotaReservation, Token, User
from oneapi.services import quota, ratios

ratio = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)
tokens = st.integers(min_value=0, max_value=2_000_000)


@given(tokens, tokens, ratio, ratio, ratio)
def test_charge_is_the_exact_ceiling(prompt, completion, model_r, group_r, completion_r):
    charged = ratios.charge(prompt, completion, model_r, group_r, completion_r)
    exact = (Fraction(prompt) + Fraction(completion) * Fraction(completion_r)) * Fraction(model_r) * Fraction(group_r)
    assert charged >= 0
    if prompt + completion == 0 or model_r * group_r == 0:
        assert charged == 0
    else:
        assert charged == max(math.ceil(exact), 1)


@given(tokens, tokens, st.integers(min_value=1, max_value=100_000), ratio, ratio, ratio)
def test_reservation_with_max_tokens_covers_any_answer(prompt, completion, max_tokens, model_r, group_r, completion_r):
    completion = min(completion, max_tokens)
    estimate = ratios.charge(prompt, max_tokens, model_r, group_r, completion_r)
    assert ratios.charge(prompt, completion, model_r, group_r, completion_r) <= estimate


def test_decimal_ratio_examples():
    assert ratios.charge(1000, 0, Decimal("0.075"), Decimal(1), Decimal(4)) == 75
    assert ratios.charge(1000, 500, Decimal("2.5"), Decimal(1), Decimal(4)) == 7500  # the spec's worked example


requests_strategy = st.lists(st.tuples(st.integers(0, 400), st.integers(0, 600)), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(0, 3000), user_start=st.integers(0, 5000), calls=requests_strategy)
def test_reserve_and_settle_never_overdraw(app, start, user_start, calls):
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "root"))
        user.quota, user.used_quota = user_start, 0
        token = Token(user_id=user.id, name="p", key_hash=f"{start}-{user_start}-{len(calls)}-{id(calls)}",
                      remain_quota=start, used_quota=0)
        db.session.add(token)
        db.session.commit()
        charged = 0
        for number, (reserve, actual) in enumerate(calls):
            try:
                held = quota.reserve(f"r{token.id}-{number}", user.id, token.id, reserve, True)
            except quota.QuotaExceeded:
                continue
            assert quota.settle(held, actual, log=None)
            assert not quota.settle(held, actual, log=None)  # exactly once
            charged += actual
        db.session.expire_all()
        token = db.session.get(Token, token.id)
        user = db.session.get(User, user.id)
        assert token.remain_quota >= 0 and user.quota >= 0
        assert token.used_quota == charged and user.used_quota == charged
        # without shortfalls the balance is exact; with one, what is left is never more than exact
        assert token.remain_quota >= start - charged and user.quota >= user_start - charged
        if start >= charged and user_start >= charged:
            assert token.remain_quota == start - charged and user.quota == user_start - charged
        assert db.session.scalar(select(QuotaReservation).where(QuotaReservation.token_id == token.id)) is None
        db.session.delete(token)
        db.session.commit()
