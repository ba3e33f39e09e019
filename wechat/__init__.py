"""WeChat integration: async API client (client.py) and an offline stand-in for WeChat's HTTP API (simulator.py)."""
