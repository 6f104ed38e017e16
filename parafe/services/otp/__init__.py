"""One-time-code signature: codes, signing links, public pages and SMS deliveries."""
