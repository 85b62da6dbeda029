"""The aggregator service: Anonymised, k-anonymous, differentially private trends for HR."""
