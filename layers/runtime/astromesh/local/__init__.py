"""``astromesh local``: the deployed shape of the CDK app on this machine, without Docker.

What runs where, as in AWS, read from the synthesized templates in ``cdk.out``:

- :mod:`.templates`: the functions (names, code folders, environments), both state machines,
  the documents bucket and its notification, the secrets, the SSM parameters and the API
  routes, with CloudFormation's intrinsic functions resolved for one account and region.
- :mod:`.emulation`: moto in server mode on ``--aws-port`` (LocalStack's 4566 by default)
  holding those resources, Step Functions executing its definitions, and every Lambda
  invocation (synchronous, ``Event``, a state machine's task, an S3 notification) running the
  real ``functions/*/handler.py`` in this process, each function in emulated containers with
  the environment its template gives it (:mod:`.environ`, :mod:`.lambdas`).
- :mod:`.front`: the API Gateway side: REST and webhook requests become proxy events for the
  ``api`` / ``whatsapp`` / ``telegram`` functions; WebSocket connections become
  ``$connect`` / ``$default`` / ``$disconnect`` events, and ``post_to_connection`` data goes
  back to the real socket.

This package is for a developer machine and needs moto (the ``dev`` extra): it is left out of
the runtime layer that Lambda runs (``infra/bundling.py``).
"""
