# The image docker-compose.yml runs: Airflow 3 + dbt + the project's locked
# dependencies. dags/, dbt_project/, boomerang/ and ml/ are mounted over the copies
# baked in here, so edits show up without a rebuild.
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
