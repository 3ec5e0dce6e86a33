"""The owner's console and the customer page: ASGI, property and real-browser tests."""
