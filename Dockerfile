# The ABH case worker, for a real Temporal cluster and PostgreSQL:
#   docker run -e TEMPORAL_ADDRESS=host:7233 -e TEMPORAL_NAMESPACE=default \
#              -e DATABASE_URL=postgresql://user:pass@host:5432/abh abh-worker
# Without those two variables worker.py would start its embedded dev stack instead (local use only).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, read from pyproject.toml alone, so a source edit does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself (runtime dependencies only, no dev extras); .dockerignore keeps the context small.
COPY . .
RUN pip install . \
    && rm -rf build ./*.egg-info

# An unprivileged user that cannot rewrite the code it runs. Numeric, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 abh \
    && useradd --system --uid 10001 --gid abh --create-home --home-dir /home/abh --shell /usr/sbin/nologin abh
# Writable place for the embedded fallback's data (unused when TEMPORAL_ADDRESS and DATABASE_URL are set).
ENV ABH_DATA_DIR=/home/abh/data
USER 10001:10001

# Exec form: python is PID 1 and gets SIGTERM directly, so the worker drains and stops cleanly.
CMD ["python", "worker.py"]
