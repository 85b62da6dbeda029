# One image for every service; each service is a command (python -m services.<name>).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY shared ./shared
COPY services ./services
COPY deploy ./deploy
RUN pip install --no-cache-dir --prefix=/install -c constraints.txt .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home kinwell
COPY --from=build /install /usr/local
COPY deploy /app/deploy
WORKDIR /app
USER 10001
ENV KINWELL_MODE=production PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
EXPOSE 8000
CMD ["python", "-m", "services.consent"]
