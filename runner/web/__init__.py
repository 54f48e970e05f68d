"""What the runner's two HTTP endpoints share: the REST API (:mod:`runner.api`) and the keyhole listener
(:mod:`runner.keyhole.http`) are each served by :class:`~runner.web.server.ApiServer` (uvicorn, bounded graceful
shutdown) and cap request bodies with :class:`~runner.web.limits.BodyLimit`."""
