"""gunicorn reads this file from the working directory: ``gunicorn -w 4 wsgi:app``."""


def post_worker_init(worker):
    # Each web worker starts its own diagram-code sandbox processes at boot rather than on the
    # first request (about 0.8 s). Not with --preload: the pool must belong to the worker.
    from app.cases.services import warm_up_script_workers

    with worker.wsgi.app_context():
        warm_up_script_workers()
