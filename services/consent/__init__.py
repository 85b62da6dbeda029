"""The consent service: purposes, consent records and receipts, the subject directory,
data-subject requests and HRIS ingress."""
