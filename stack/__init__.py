"""How ABH runs: settings from the environment, logging, the Temporal client and the embedded stack."""
