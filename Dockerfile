# The image docker-compose.yml runs: Airflow 3 + dbt + the project's locked dependencies. dags/,
# dbt_project/, boomerang/ and ml/ are mounted over the copies baked in here, so edits show up
# without a rebuild.
FROM python:3.11-slim

ENV UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/boomerang \
    PYTHONUNBUFFERED=1

RUN pip install --no-cache-dir "uv==0.13.9"

WORKDIR /opt/boomerang
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --extra postgres --no-install-project

COPY boomerang ./boomerang
COPY ml ./ml
COPY dags ./dags
COPY dbt_project ./dbt_project

# Not root at run time. docker-compose.yml runs every service as AIRFLOW_UID (your uid) in group 0,
# as the official Airflow image does: the folders a process writes here (home, Airflow's home) belong
# to group 0 and are group-writable, so any uid can write them. A uid without a line in /etc/passwd has
# no name and no home, and Airflow refuses to run nameless: USER and HOME say both (getpass reads USER).
RUN useradd --uid 50000 --gid 0 --home-dir /home/boomerang --create-home --shell /bin/bash boomerang \
    && mkdir -p /opt/airflow \
    && chown -R 50000:0 /home/boomerang /opt/airflow \
    && chmod -R g+rwX /home/boomerang /opt/airflow
ENV HOME=/home/boomerang \
    USER=boomerang \
    AIRFLOW_HOME=/opt/airflow
USER 50000:0
