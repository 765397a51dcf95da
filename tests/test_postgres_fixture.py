import sqlalchemy


def test_postgres_fixture_gives_a_real_server(postgres_url):
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("CREATE TABLE t (x integer)"))
        conn.execute(sqlalchemy.text("INSERT INTO t VALUES (1), (2)"))
        total = conn.execute(sqlalchemy.text("SELECT sum(x) FROM t")).scalar_one()
        version = conn.execute(sqlalchemy.text("SHOW server_version")).scalar_one()
    engine.dispose()
    assert total == 3
    assert int(version.split(".")[0]) >= 13
