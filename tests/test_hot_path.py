"""The relay path in the steady state: no database reads, and two short write transactions per request
(the reservation; the settlement with its log row)."""

from sqlalchemy import event

from oneapi.extensions import db
from tests.conftest import add_channel, add_token

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def record_sql(app):
    statements, commits = [], []
    with app.app_context():
        engine = db.engine

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        words = statement.split()
        statements.append(words[0].upper() + " " + words[1 if words[0].upper() == "UPDATE" else 2].strip('"`'))

    def on_commit(conn):
        commits.append(1)

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    return statements, commits, lambda: (event.remove(engine, "before_cursor_execute", on_execute),
                                         event.remove(engine, "commit", on_commit))


def test_steady_state_relay_reads_nothing_and_writes_twice(app, root, upstream):
    add_channel(root, upstream.url)
    key = add_token(root, unlimited_quota=False, remain_quota=10_000)["key"]
    headers = {"Authorization": f"Bearer {key}"}
    app.config["CACHE_SYNC_INTERVAL"] = 3600  # the once-a-second change poll is not part of a request
    for _ in range(2):  # warm the caches: token, user, routing table, options
        assert root.post("/v1/chat/completions", json=CHAT, headers=headers).status_code == 200
    for stream in (False, True):
        statements, commits, stop = record_sql(app)
        try:
            response = root.post("/v1/chat/completions", json={**CHAT, "stream": stream}, headers=headers)
            assert response.status_code == 200 and response.data
        finally:
            stop()
        assert not [s for s in statements if s.startswith("SELECT")], statements
        assert len(commits) == 2, (commits, statements)
        assert statements == [
            "UPDATE tokens", "UPDATE users", "INSERT quota_reservations",
            "DELETE quota_reservations", "UPDATE tokens", "UPDATE users", "UPDATE channels", "INSERT logs",
        ], statements
