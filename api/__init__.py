"""The HTTP API: open cases, act on them and read them over HTTP, and the helpdesks' webhooks.

The same wire contract as the Temporal client API (stack/cases.py), for systems that speak HTTP only.
"""
