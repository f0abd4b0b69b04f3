"""Unit tests of services/: the charge formula, ratio lookups, channel routing, quota reserve/settle/refund,
token counting, and the SQL_DSN conversion of config."""

import os
import random
import time
from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from oneapi import config
from oneapi.extensions import db
from oneapi.models import Channel, Log, QuotaReservation, Token, User
from oneapi.services import options, quota, ratios, routing, tokenizer
from tests.conftest import add_channel

# --- ratios.charge ---------------------------------------------------------------------------------


def test_charge_is_decimal_exact():
    assert ratios.charge(1000, 0, Decimal("0.075"), Decimal(1), Decimal(4)) == 75
    assert ratios.charge(11, 7, Decimal("0.075"), Decimal(1), Decimal(4)) == 3  # ceil(2.925)
    assert ratios.charge(1000, 500, Decimal("2.5"), Decimal(1), Decimal(4)) == 7500  # the spec's worked example
    # where binary floating point overshoots, a float ceiling would charge one unit too much
    assert ratios.charge(100, 0, Decimal("0.07"), Decimal(1), Decimal(2)) == 7  # 100 × 0.07 = 7.000000000000001
    assert ratios.charge(200, 0, Decimal("0.275"), Decimal(1), Decimal(4)) == 55  # 55.00000000000001 in float
    assert ratios.charge(100, 0, Decimal("0.55"), Decimal(1), Decimal(4)) == 55  # 55.00000000000001 in float


def test_charge_rounds_up():
    assert ratios.charge(1001, 0, Decimal("0.075"), Decimal(1), Decimal(1)) == 76  # 75.075
    assert ratios.charge(10, 0, Decimal("0.5"), Decimal("0.5"), Decimal(1)) == 3  # 2.5


def test_charge_of_zero_tokens_is_zero():
    assert ratios.charge(0, 0, Decimal("0.075"), Decimal(1), Decimal(4)) == 0
    assert ratios.charge(0, 0, Decimal(30), Decimal(2), Decimal(5)) == 0


def test_charge_is_at_least_one_when_the_ratio_is_positive():
    assert ratios.charge(1, 0, Decimal("0.0001"), Decimal(1), Decimal(1)) == 1
    # completion ratio 0 (whisper) with only completion tokens: the product is 0, the charge still 1
    assert ratios.charge(0, 5, Decimal(15), Decimal(1), Decimal(0)) == 1


def test_charge_is_zero_when_the_ratio_is_zero():
    assert ratios.charge(1000, 1000, Decimal(0), Decimal(1), Decimal(4)) == 0
    assert ratios.charge(1000, 1000, Decimal("2.5"), Decimal(0), Decimal(4)) == 0


def test_charge_is_an_int():
    assert type(ratios.charge(11, 7, Decimal("0.075"), Decimal(1), Decimal(4))) is int


def test_ratio_lookups(app):
    with app.app_context():
        assert ratios.model_ratio("gpt-4o-mini") == Decimal("0.075")
        assert ratios.model_ratio("no-such-model-anywhere") == 30
        assert ratios.completion_ratio("gpt-4o-mini") == 4
        assert ratios.completion_ratio("gpt-4o-2024-05-13") == 3
        assert ratios.completion_ratio("gpt-3.5-turbo") == 3
        assert ratios.completion_ratio("gpt-4") == 2
        assert ratios.completion_ratio("claude-3-haiku-20240307") == 5
        assert ratios.completion_ratio("whisper-1") == 0
        assert ratios.completion_ratio("something-else") == 1
        assert ratios.group_ratio("default") == 1
        assert ratios.group_ratio("no-such-group") == 1
        cost = ratios.charge(1000, 0, ratios.model_ratio("gpt-4o-mini"), ratios.group_ratio("default"),
                             ratios.completion_ratio("gpt-4o-mini"))
        assert cost == 75


def test_an_unpriced_model_is_logged_once_per_worker_not_per_request(app, caplog):
    name = f"unpriced-{time.time_ns()}"
    with app.app_context(), caplog.at_level("ERROR", logger="oneapi.services.ratios"):
        for _ in range(3):
            assert ratios.model_ratio(name) == 30
    assert [r.getMessage() for r in caplog.records].count(
        f"model '{name}' has no ratio; charging the default ratio 30 (logged once per worker; set ModelRatio)") == 1


def test_saved_ratio_options_override_the_defaults(app):
    with app.app_context():
        default_4o = ratios.model_ratio("gpt-4o")
        options.update("ModelRatio", '{"gpt-4o-mini": 1, "gpt-4o-mini(8)": 2, "cheap-model": 0.07}')
        options.update("GroupRatio", '{"default": 1, "vip": 0.5}')
        options.update("CompletionRatio", '{"gpt-4o-mini": 2}')
        assert ratios.model_ratio("gpt-4o-mini") == 1
        assert ratios.model_ratio("gpt-4o-mini", 8) == 2
        assert ratios.model_ratio("gpt-4o") == default_4o  # defaults still apply to the rest
        assert ratios.group_ratio("vip") == Decimal("0.5")
        assert ratios.completion_ratio("gpt-4o-mini") == 2
        assert ratios.charge(100, 10, ratios.model_ratio("gpt-4o-mini"), ratios.group_ratio("vip"),
                             ratios.completion_ratio("gpt-4o-mini")) == 60
        # a ratio saved as a JSON float is still exact: 100 × 0.07 = 7, not ceil(7.000000000000001) = 8
        assert ratios.charge(100, 0, ratios.model_ratio("cheap-model"), ratios.group_ratio("default"), Decimal(1)) == 7


# --- routing ----------------------------------------------------------------------------------------


def make_channels(root, upstream, specs):
    """specs: (priority, weight[, status]) per channel; returns their ids in order."""
    ids = []
    for number, spec in enumerate(specs):
        priority, weight, *rest = spec
        fields = {"priority": priority, "weight": weight, "key": f"sk-channel-{number}"}
        if rest:
            fields["status"] = rest[0]
        ids.append(add_channel(root, upstream.url, models="m1", **fields)[0])
    return ids


def pick_counts(app, n, exclude=()):
    with app.app_context():
        table = routing.table()
        return Counter(getattr(table.pick("default", "m1", set(exclude)), "id", None) for _ in range(n))


def test_weighted_pick_within_the_top_tier(app, root, upstream):
    light, heavy, low = make_channels(root, upstream, [(5, 1), (5, 3), (0, 100)])
    random.seed(20240601)
    counts = pick_counts(app, 4000)
    assert counts[low] == 0
    assert counts[light] + counts[heavy] == 4000
    assert 0.70 <= counts[heavy] / 4000 <= 0.80
    assert 0.20 <= counts[light] / 4000 <= 0.30


def test_all_zero_weights_are_uniform(app, root, upstream):
    ids = make_channels(root, upstream, [(0, 0), (0, 0), (0, 0)])
    random.seed(7)
    counts = pick_counts(app, 3000)
    assert set(counts) == set(ids)
    for channel_id in ids:
        assert 0.27 <= counts[channel_id] / 3000 <= 0.40


def test_lower_priority_only_when_the_top_tier_is_excluded(app, root, upstream):
    top_a, top_b, middle, bottom = make_channels(root, upstream, [(10, 0), (10, 0), (5, 0), (-1, 0)])
    counts = pick_counts(app, 300)
    assert set(counts) == {top_a, top_b}
    assert set(pick_counts(app, 50, exclude={top_a})) == {top_b}
    assert set(pick_counts(app, 50, exclude={top_a, top_b})) == {middle}
    assert set(pick_counts(app, 50, exclude={top_a, top_b, middle})) == {bottom}
    assert set(pick_counts(app, 5, exclude={top_a, top_b, middle, bottom})) == {None}


def test_disabled_channels_are_not_routed(app, root, upstream):
    disabled, enabled = make_channels(root, upstream, [(10, 5, 2), (0, 0)])
    assert set(pick_counts(app, 100)) == {enabled}
    with app.app_context():
        table = routing.table()
        assert table.has_route("default", "m1") is True
        assert table.has_route("default", "m2") is False
        assert table.has_route("vip", "m1") is False
        assert table.models("default") == ["m1"]
        assert table.channel(disabled).status == 2


def test_routing_follows_channel_edits(app, root, upstream):
    first, second = make_channels(root, upstream, [(0, 0), (0, 0)])
    assert set(pick_counts(app, 200)) == {first, second}
    assert root.put("/api/channel/", json={"id": first, "priority": 9}).json["success"] is True
    assert set(pick_counts(app, 100)) == {first}
    assert root.put("/api/channel/", json={"id": first, "status": 2}).json["success"] is True
    assert set(pick_counts(app, 100)) == {second}
    assert root.delete(f"/api/channel/{second}").json["success"] is True
    assert set(pick_counts(app, 5)) == {None}


def test_channel_groups_and_models_are_split_and_trimmed(app, root, upstream):
    channel = add_channel(root, upstream.url, models=" m1 , m2,,m1", group="default, vip")[0]
    with app.app_context():
        table = routing.table()
        for group in ("default", "vip"):
            for model in ("m1", "m2"):
                assert table.pick(group, model).id == channel
        assert table.models("vip") == ["m1", "m2"]


# --- quota ------------------------------------------------------------------------------------------


def make_account(app, user_quota=100, token_quota=100, unlimited=False):
    with app.app_context():
        user = User(username="payer", password="x", quota=user_quota)
        db.session.add(user)
        db.session.flush()
        token = Token(user_id=user.id, name="t", remain_quota=token_quota, unlimited_quota=unlimited)
        token.set_key("k" * 48)
        channel = Channel(name="c", key="sk-c", type=1)
        db.session.add_all([token, channel])
        db.session.commit()
        return user.id, token.id, channel.id


def balances(user_id, token_id):
    """(token remain, token used, user quota, user used, request count), read fresh from the database."""
    token = db.session.execute(select(Token.remain_quota, Token.used_quota).where(Token.id == token_id)).one()
    user = db.session.execute(select(User.quota, User.used_quota, User.request_count).where(User.id == user_id)).one()
    return (*token, *user)


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def test_reserve_takes_from_token_and_user(app):
    user_id, token_id, _ = make_account(app)
    with app.app_context():
        reservation = quota.reserve("r1", user_id, token_id, 40, True)
        assert reservation.amount == 40
        assert balances(user_id, token_id) == (60, 0, 60, 0, 0)
        assert count(QuotaReservation) == 1


def test_reserve_refuses_the_token_going_below_zero(app):
    user_id, token_id, _ = make_account(app, user_quota=1000, token_quota=10)
    with app.app_context():
        with pytest.raises(quota.QuotaExceeded) as refused:
            quota.reserve("r1", user_id, token_id, 11, True)
        assert refused.value.who == "token"
        assert balances(user_id, token_id) == (10, 0, 1000, 0, 0)
        assert count(QuotaReservation) == 0
        quota.reserve("r2", user_id, token_id, 10, True)  # exactly what is left is fine
        assert balances(user_id, token_id) == (0, 0, 990, 0, 0)


def test_reserve_refuses_the_user_going_below_zero_and_leaves_the_token_alone(app):
    user_id, token_id, _ = make_account(app, user_quota=10, token_quota=1000)
    with app.app_context():
        with pytest.raises(quota.QuotaExceeded) as refused:
            quota.reserve("r1", user_id, token_id, 11, True)
        assert refused.value.who == "user"
        assert balances(user_id, token_id) == (1000, 0, 10, 0, 0)
        assert count(QuotaReservation) == 0


def test_reserve_for_an_unlimited_token_only_takes_from_the_user(app):
    user_id, token_id, _ = make_account(app, user_quota=100, token_quota=0, unlimited=True)
    with app.app_context():
        reservation = quota.reserve("r1", user_id, token_id, 30, False)
        assert balances(user_id, token_id) == (0, 0, 70, 0, 0)
        with pytest.raises(quota.QuotaExceeded) as refused:
            quota.reserve("r2", user_id, token_id, 71, False)
        assert refused.value.who == "user"
        assert quota.settle(reservation, 12, log={"model_name": "m"}) is True
        assert balances(user_id, token_id) == (0, 12, 88, 12, 1)


def test_settle_replaces_the_reservation_exactly_once(app):
    user_id, token_id, channel_id = make_account(app)
    with app.app_context():
        reservation = quota.reserve("req-1", user_id, token_id, 40, True)
        fields = {"model_name": "gpt-4o-mini", "prompt_tokens": 11, "completion_tokens": 7, "username": "payer",
                  "token_name": "t"}
        assert quota.settle(reservation, 3, log=fields, channel_id=channel_id) is True
        after = balances(user_id, token_id)
        assert after == (97, 3, 97, 3, 1)
        assert db.session.scalar(select(Channel.used_quota).where(Channel.id == channel_id)) == 3
        logs = db.session.scalars(select(Log)).all()
        assert len(logs) == 1
        assert (logs[0].type, logs[0].quota, logs[0].request_id, logs[0].channel_id, logs[0].user_id,
                logs[0].token_id, logs[0].model_name) == (2, 3, "req-1", channel_id, user_id, token_id, "gpt-4o-mini")
        # a second settlement of the same request id changes nothing
        assert quota.settle(reservation, 3, log=fields, channel_id=channel_id) is False
        assert quota.settle(reservation, 50, log=fields, channel_id=channel_id) is False
        assert quota.refund(reservation) is False
        assert balances(user_id, token_id) == after
        assert db.session.scalar(select(Channel.used_quota).where(Channel.id == channel_id)) == 3
        assert count(Log) == 1
        assert count(QuotaReservation) == 0


def test_settle_above_the_reservation_takes_the_difference(app):
    user_id, token_id, _ = make_account(app)
    with app.app_context():
        reservation = quota.reserve("r1", user_id, token_id, 10, True)
        assert quota.settle(reservation, 25, log={}) is True
        assert balances(user_id, token_id) == (75, 25, 75, 25, 1)


def test_settle_never_drives_a_balance_below_zero(app):
    user_id, token_id, _ = make_account(app, user_quota=20, token_quota=10)
    with app.app_context():
        reservation = quota.reserve("r1", user_id, token_id, 10, True)
        assert quota.settle(reservation, 500, log={}) is True
        remain, used, user_quota, user_used, requests = balances(user_id, token_id)
        assert remain == 0 and user_quota == 0
        assert used == 500 and user_used == 500 and requests == 1


def test_refund_restores_everything(app):
    user_id, token_id, channel_id = make_account(app)
    with app.app_context():
        reservation = quota.reserve("r1", user_id, token_id, 40, True)
        assert quota.refund(reservation) is True
        assert balances(user_id, token_id) == (100, 0, 100, 0, 0)
        assert count(Log) == 0 and count(QuotaReservation) == 0
        assert quota.refund(reservation) is False
        assert balances(user_id, token_id) == (100, 0, 100, 0, 0)


def test_reservations_are_independent_per_request_id(app):
    user_id, token_id, _ = make_account(app)
    with app.app_context():
        first = quota.reserve("a", user_id, token_id, 30, True)
        second = quota.reserve("b", user_id, token_id, 30, True)
        assert balances(user_id, token_id) == (40, 0, 40, 0, 0)
        assert quota.settle(first, 5, log={}) is True
        assert quota.refund(second) is True
        assert balances(user_id, token_id) == (95, 5, 95, 5, 1)


def test_negative_amounts_are_never_charged(app):
    user_id, token_id, _ = make_account(app)
    with app.app_context():
        reservation = quota.reserve("r1", user_id, token_id, -50, True)
        assert reservation.amount == 0
        assert balances(user_id, token_id) == (100, 0, 100, 0, 0)
        assert quota.settle(reservation, -7, log={}) is True
        assert balances(user_id, token_id) == (100, 0, 100, 0, 1)


# --- tokenizer ---------------------------------------------------------------------------------------


def test_count_messages_matches_openai(app):
    with app.app_context():
        assert tokenizer.count_messages([{"role": "user", "content": "Hello, how are you?"}], "gpt-4o") == 13
        assert tokenizer.count_messages([{"role": "user", "content": "Hi"}], "gpt-4o-mini") == 8
        assert tokenizer.count_messages([], "gpt-4o") == 3
        assert tokenizer.count_messages("not a list", "gpt-4o") == 0


def test_count_text(app):
    with app.app_context():
        assert tokenizer.count_text("", "gpt-4o") == 0
        assert tokenizer.count_text("Hello, how are you?", "gpt-4o") == 6
        assert tokenizer.count_text("Hello, how are you?", "gpt-3.5-turbo") == 6
        assert tokenizer.encoding_name("gpt-4o-mini") == "o200k_base"
        assert tokenizer.encoding_name("gpt-3.5-turbo") == "cl100k_base"


def test_named_messages_and_array_content(app):
    with app.app_context():
        plain = tokenizer.count_messages([{"role": "user", "content": "Hello, how are you?"}], "gpt-4o")
        named = tokenizer.count_messages([{"role": "user", "content": "Hello, how are you?", "name": "bob"}], "gpt-4o")
        assert named == plain + 1 + tokenizer.count_text("bob", "gpt-4o")
        parts = [{"type": "text", "text": "Hello, how are you?"},
                 {"type": "image_url", "image_url": {"url": "http://127.0.0.1/x.png", "detail": "low"}}]
        assert tokenizer.count_messages([{"role": "user", "content": parts}], "gpt-4o") == plain + 85


def test_count_prompt_for_completions_and_embeddings(app):
    with app.app_context():
        assert tokenizer.count_prompt({"prompt": "Hello, how are you?"}, "gpt-4o") == 6
        assert tokenizer.count_prompt({"prompt": ["Hello, how are you?", "Hello, how are you?"]}, "gpt-4o") == 12
        assert tokenizer.count_prompt({"input": "Hello, how are you?"}, "text-embedding-3-small") == 6


# --- config.database_url -------------------------------------------------------------------------------


@pytest.mark.parametrize("dsn,url", [
    ("user:pass@tcp(host:3306)/db", "mysql+pymysql://user:pass@host:3306/db?charset=utf8mb4"),
    ("root:@tcp(127.0.0.1:3306)/test", "mysql+pymysql://root:@127.0.0.1:3306/test?charset=utf8mb4"),
    ("root@tcp(localhost:3306)/oneapi", "mysql+pymysql://root@localhost:3306/oneapi?charset=utf8mb4"),
    ("user:pass@tcp(host:3306)/db?charset=utf8&parseTime=true&loc=Local",
     "mysql+pymysql://user:pass@host:3306/db?charset=utf8mb4"),
    ("user:pass@tcp(host:3306)/db?parseTime=true&timeout=5s",
     "mysql+pymysql://user:pass@host:3306/db?timeout=5s&charset=utf8mb4"),
    ("user:p%ss/w:rd@tcp(host:3306)/db", "mysql+pymysql://user:p%25ss%2Fw%3Ard@host:3306/db?charset=utf8mb4"),
    ("mysql://user:pass@host:3306/db", "mysql+pymysql://user:pass@host:3306/db?charset=utf8mb4"),
    ("postgres://postgres@127.0.0.1:5432/test", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    ("postgresql://u:p@db:5432/one?sslmode=disable", "postgresql+psycopg://u:p@db:5432/one?sslmode=disable"),
    ("  postgres://u@h/d  ", "postgresql+psycopg://u@h/d"),
])
def test_database_url(dsn, url):
    assert config.database_url(dsn, "ignored.db") == url


def test_database_url_password_with_an_at_sign():
    """go-sql-driver splits at the *last* '@' before the last '/', so a password may contain '@'."""
    assert config.database_url("user:p@ss@tcp(host:3306)/db", "x.db") == \
        "mysql+pymysql://user:p%40ss@host:3306/db?charset=utf8mb4"


@pytest.mark.parametrize("dsn", ["", None, "   "])
def test_empty_dsn_is_sqlite_at_sqlite_path(dsn, tmp_path):
    path = str(tmp_path / "one-api.db")
    assert config.database_url(dsn, path) == "sqlite:///" + path
    relative = config.database_url(dsn, "data/one-api.db")
    assert relative == "sqlite:///" + os.path.abspath("data/one-api.db")


def test_unparseable_dsn_is_a_configuration_error():
    with pytest.raises(SystemExit):
        config.database_url("this is not a dsn", "x.db")


def test_load_reads_the_environment(tmp_path):
    settings = config.load({"SQL_DSN": "postgres://u@h:5432/d", "PORT": "8080", "SQLITE_PATH": "ignored.db",
                            "RETRY": "x"})
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h:5432/d"
    assert settings["PORT"] == 8080
    sqlite = config.load({"DATA_DIR": str(tmp_path)})
    assert sqlite["SQLALCHEMY_DATABASE_URI"] == "sqlite:///" + str(tmp_path / "one-api.db")
    assert config.load({}, port=4000)["PORT"] == 4000
    with pytest.raises(SystemExit):
        config.load({"PORT": "eighty"})


def test_background_work_is_waited_for():
    import threading
    import time

    from oneapi import background

    done = threading.Event()
    background.start(lambda: (time.sleep(0.2), done.set()), name="test-background")
    background.wait(5)
    assert done.is_set()


def test_cache_broadcast_channel_is_per_database():
    from types import SimpleNamespace

    from oneapi.services import broadcast

    def app(url):
        return SimpleNamespace(extensions={}, config={"SQLALCHEMY_DATABASE_URI": url})

    one = broadcast.channel(app("postgresql+psycopg://u:secret@db/one"))
    assert one == broadcast.channel(app("postgresql+psycopg://u:secret@db/one"))  # the nodes of one database
    assert one != broadcast.channel(app("postgresql+psycopg://u:secret@db/two"))  # another gateway on the Redis
    assert "secret" not in one and one.startswith("oneapi:cache:")
