"""``python -m services.aggregator``: run the service (``shared.launch.serve``)."""

from shared.launch import serve

if __name__ == "__main__":
    serve(__package__ or "services.aggregator")
