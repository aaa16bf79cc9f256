"""Tasks: my inbox, a task and its form, claim / release / complete."""
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api import require_login
from app.cases import queries, services
from app.cases.schemas import (
    CompleteTaskSchema,
    FormSchema,
    InboxQuerySchema,
    TaskDetailSchema,
    TaskPageSchema,
)

PREFIX = "/tasks"
blp = Blueprint("api_tasks", __name__, description="User tasks")


@blp.route("")
class Inbox(MethodView):
    @blp.arguments(InboxQuerySchema, location="query")
    @blp.response(200, TaskPageSchema)
    def get(self, args):
        """Ready tasks: held by me (scope=mine), claimable by my roles (claimable) or both."""
        return queries.inbox(require_login(), **args)


@blp.route("/<int:task_id>")
class Task(MethodView):
    @blp.response(200, TaskDetailSchema)
    def get(self, task_id):
        return services.get_visible_task(require_login(), task_id)


@blp.route("/<int:task_id>/form")
class TaskForm(MethodView):
    @blp.response(200, FormSchema)
    def get(self, task_id):
        """The task's JSON Schema and the values to prefill it with."""
        task = services.get_visible_task(require_login(), task_id)
        return {"name": task.form_name, "schema": services.task_form(task), "data": services.form_prefill(task)}


@blp.route("/<int:task_id>/claim")
class Claim(MethodView):
    @blp.response(200, TaskDetailSchema)
    def post(self, task_id):
        return services.claim_task(require_login(), task_id)


@blp.route("/<int:task_id>/release")
class Release(MethodView):
    @blp.response(200, TaskDetailSchema)
    def post(self, task_id):
        return services.release_task(require_login(), task_id)


@blp.route("/<int:task_id>/complete")
class Complete(MethodView):
    @blp.arguments(CompleteTaskSchema)
    @blp.response(200, TaskDetailSchema)
    def post(self, payload, task_id):
        """Submit the task's form. 422 lists errors per field; 409 if the task is no longer ready."""
        return services.complete_task(require_login(), task_id, payload["data"])
