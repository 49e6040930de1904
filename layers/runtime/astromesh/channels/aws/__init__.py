"""The channels on AWS Lambda: proxy events, the WebSocket API's routes, self-invoked jobs.

Handlers in ``functions/`` stay thin by calling these: :mod:`.proxy` turns API Gateway
proxy events into webhook requests and responses, :mod:`.worker` keeps a container's loop
and services, :mod:`.invoke` hands slow work to an asynchronous self-invocation,
:mod:`.websocket` implements ``$connect``/``$disconnect``/``$default`` over
:mod:`.connections` and pushes frames with :mod:`.frames` and :mod:`.management`.
"""
