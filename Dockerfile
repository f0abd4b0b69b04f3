# Two stages: build the virtualenv, then copy it into a slim runtime image that runs as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /app
COPY requirements.txt .
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir -r requirements.txt

FROM python:3.11-slim
RUN useradd --uid 1001 --create-home oneapi && mkdir /data && chown oneapi /data
COPY --from=build /venv /venv
WORKDIR /app
COPY --chown=oneapi . .
USER oneapi
ENV PATH=/venv/bin:$PATH DATA_DIR=/data PORT=3000 PYTHONUNBUFFERED=1
EXPOSE 3000
VOLUME /data
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/api/status' % os.environ.get('PORT','3000'))"
# Give running streams time to finish on `docker stop`: run with --stop-timeout above GRACEFUL_TIMEOUT.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
