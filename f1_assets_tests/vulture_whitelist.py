"""Names in `f1_assets` that no code of ours reads, because a framework or library reads them.

vulture counts a name used when it appears in a file it reads; `test_dead_code.py` runs it over
`f1_assets` and this file. Only names something outside the project reads belong here, each under a
comment saying who reads it; dead code is removed, never listed. Each line is `read_by.<name>`; the
test also fails on an entry vulture would not report (the name went away or our code reads it now).
Never imported or run: vulture and the test read it as text.
"""
# ruff: noqa: B018, F821  (bare attribute reads of an undefined `read_by`: vulture's whitelist form)

# Dagster calls an IO manager's handle_output / load_input (io_managers/parquet.py, io_managers/warehouse.py)
read_by.handle_output
read_by.load_input

# Alembic reads each migration module's revision / down_revision (migrations/versions/*.py)
read_by.revision
read_by.down_revision

# logging.LogRecord.getMessage and every formatter read record.msg (logs.py sets it on its copy)
read_by.msg

# FastF1 reads its module constants at request time (resources/fastf1.py points them at our hosts)
read_by.base_url_mirror
read_by._SCHEDULE_BASE_URL
read_by.BASE_URL
read_by.PROTO  # fastf1.mvapi.api builds the circuit-info URL from PROTO and HOST
read_by.HOST

# requests sends session.auth with every request (resources/jolpica.py: a private mirror's basic auth)
read_by.auth

# Dagster shows these pydantic config fields in the UI: each names the environment variable the
# resource reads (resources/storage.py, resources/jolpica.py, resources/fastf1.py)
read_by.url_env_var
read_by.base_url_env_var
read_by.hourly_budget_env_var
read_by.settle_days_env_var
read_by.livetiming_url_env_var
read_by.schedule_url_env_var
read_by.jolpica_url_env_var
read_by.cache_dir_env_var
read_by.circuit_info_url_env_var

# logging's formatters read a record's levelname (resources/fastf1.py: the no-F1-account line, downgraded to INFO)
read_by.levelname
