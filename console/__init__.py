"""The operator's side: what operators, TAMs and team leads read (listings, the case card, the timeline,
the report, what needs attention) and the verdicts they record. It reads Temporal and PostgreSQL and
writes nothing a case depends on; workflows and activities never import it."""
