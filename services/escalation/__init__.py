"""The escalation service: Crisis cases, human review, on-call rosters and timed escalation."""
