"""What if: a month of recorded tickets replayed through the real CaseWorkflow under two policies, on
Temporal's time-skipping server, with notifications counted and nothing written to the live database."""
