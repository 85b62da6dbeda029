-- One database per service: no service reads another's data.
CREATE DATABASE kinwell_consent;
CREATE DATABASE kinwell_checkin;
CREATE DATABASE kinwell_recommender;
CREATE DATABASE kinwell_aggregator;
CREATE DATABASE kinwell_escalation;
