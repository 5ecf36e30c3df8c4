"""Helpdesk webhooks: each adapter checks its sender's signature and maps its events onto the case API."""
