"""The platform side: the sync client, the platform's own store (database + files) and the user's annotations.

It knows the Results API only over HTTP and the documents in `rdbridge.contracts`, as a separate installation would.
"""
