"""The platform's web pages over the synced library (server-rendered; readable without JavaScript)."""
