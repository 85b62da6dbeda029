"""The checkin service: Validated check-ins, risk screening, encryption with crypto-shredding, nudges."""
