"""The sandbox: local emulators of the providers Switchboard talks to.

Each emulator is a WSGI app that implements the endpoints Switchboard uses with the provider's
documented paths, auth header, error shapes and rate-limit behaviour (never Switchboard's
convenience), records what it received, and can be told to misbehave (faults) so tests can
prove the proxy copes. The same emulators serve the test suite, the demo (``make run``) and
the benchmarks; ``sandbox.server.serve`` runs one on a loopback port in a background thread,
``python -m sandbox <provider> --port N`` runs one standalone.

    sandbox/server.py          serve(wsgi_app) -> RunningServer
    sandbox/shopify.py         ShopifyEmulator (GraphQL Admin API + client-credentials grant)
    sandbox/shopify_graphql.py its schema, demo-data views, search syntax and query cost
    sandbox/data/shopify.json  demo shops, products and orders
"""
