# One image for every component: `sanke signaling`, `sanke sfu`, `sanke scheduler`,
# `sanke serve` (all-in-one). Kubernetes manifests: k8s/ (they pick the subcommand).
#   docker build -t sanke .
#   docker run --rm -p 8080:8080 sanke serve --demo
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first, from pyproject.toml alone (aiortc, av, highspy ship manylinux
# wheels: no compiler needed), so a code change does not reinstall them. Built in a
# scratch folder so no stale build/ output reaches the real install below.
WORKDIR /deps
COPY pyproject.toml README.md ./
RUN for p in sanke contracts signaling media scheduler lessons; do mkdir $p && touch $p/__init__.py; done \
    && pip install . \
    && pip uninstall -y sanke
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sanke sanke
COPY contracts contracts
COPY signaling signaling
COPY media media
COPY scheduler scheduler
COPY lessons lessons
RUN pip install --no-deps .
# The pages: sanke/app.py serves the `web` folder next to the sanke package.
COPY web /opt/venv/lib/python3.11/site-packages/web

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/venv /opt/venv
# Numeric uid/gid: Kubernetes' runAsNonRoot can only verify a numeric USER
# (k8s/base/*.yaml run as 10001).
RUN groupadd --system --gid 10001 sanke \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent sanke
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["sanke"]
CMD ["serve"]
